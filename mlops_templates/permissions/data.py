"""The permission tables in ``mlops_templates/data/``, read once.

``handler_permissions.json``
    Resource type -> operation (create, read, update, delete) -> the IAM actions
    CloudFormation's handler calls (the registry schemas bundled with cfn-lint).
``withheld_permissions.json``
    Resource type -> action -> why this project never needs it (a property it does not
    set, a feature it does not use). Every deploying role gets every handler action of
    its stacks' resource types except these.
``iam_reference.json``
    Action -> the resource types it acts on and the condition keys it supports (the
    Service Authorization Reference).
``runtime_permissions.json``
    What services do at run time with the roles the stacks give them (Step Functions
    integrations, CodeBuild, CodePipeline actions, EventBridge targets, ...), each entry
    with the documentation it comes from.

``scripts/gen_permission_data.py`` writes the generated two; the others are edited by
hand, each entry with its reason or source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

OPERATIONS = ("create", "read", "update", "delete")
#: Set by scripts/gen_permission_data.py while it renders the stacks to find their
#: resource types: a type not yet in the table then has no actions instead of failing.
BOOTSTRAP = False


def _load(name: str) -> dict[str, Any]:
    return json.loads(files("mlops_templates").joinpath(f"data/{name}").read_text("utf-8"))


@cache
def handlers() -> dict[str, dict[str, list[str]]]:
    return _load("handler_permissions.json")["types"]


@cache
def withheld() -> dict[str, dict[str, str]]:
    data = _load("withheld_permissions.json")
    return {kind: entries for kind, entries in data.items() if not kind.startswith("_")}


@cache
def runtime() -> dict[str, Any]:
    return _load("runtime_permissions.json")["roles"]


@cache
def _reference() -> dict[str, Any]:
    return _load("iam_reference.json")


def canonical(kind: str) -> str:
    """``Custom::<Name>`` resources are ``AWS::CloudFormation::CustomResource``."""
    return "AWS::CloudFormation::CustomResource" if kind.startswith("Custom::") else kind


def handler_actions(kind: str, operations: tuple[str, ...] = OPERATIONS) -> set[str]:
    """Every action CloudFormation's handler of ``kind`` may call in ``operations``."""
    kind = canonical(kind)
    try:
        table = handlers()[kind]
    except KeyError:
        if BOOTSTRAP:
            return set()
        raise KeyError(
            f"{kind} is not in handler_permissions.json: run scripts/gen_permission_data.py"
        ) from None
    return {action for op in operations for action in table.get(op, [])}


def required_actions(kind: str, operations: tuple[str, ...] = OPERATIONS) -> set[str]:
    """Handler actions of ``kind`` minus the ones withheld with a reason."""
    return handler_actions(kind, operations) - set(withheld().get(canonical(kind), {}))


def operations_calling(kind: str, action: str) -> set[str]:
    """The operations of ``kind``'s handler that call ``action``."""
    return {op for op, actions in handlers()[canonical(kind)].items() if action in actions}


@dataclass(frozen=True)
class ActionInfo:
    """An action of the Service Authorization Reference."""

    name: str  # "service:Action", as the reference spells it
    resource_types: dict[str, bool]  # resource type -> required
    condition_keys: frozenset[str]  # keys the action supports with any resource type
    resource_condition_keys: dict[str, frozenset[str]]  # per resource type (incl. the type's own)

    def supports(self, key: str, resource_type: str | None = None) -> bool:
        """Whether ``key`` (e.g. ``aws:ResourceTag/mlops:project``) can be in the context."""
        templates = set(self.condition_keys)
        if resource_type is not None:
            templates |= self.resource_condition_keys.get(resource_type, frozenset())
        else:
            for keys in self.resource_condition_keys.values():
                templates |= keys
        lowered = key.lower()
        for template in templates:
            prefix = template.split("${", 1)[0].lower()
            if template.lower() == lowered or ("${" in template and lowered.startswith(prefix)):
                return True
        return False


@cache
def action(name: str) -> ActionInfo | None:
    """The reference entry of ``service:Action`` (case-insensitive), or None if unknown."""
    prefix, _, short = name.partition(":")
    service = _reference()["services"].get(prefix)
    if service is None:
        return None
    actions = {key.lower(): key for key in service["actions"]}
    key = actions.get(short.lower())
    if key is None:
        return None
    entry = service["actions"][key]
    resource_types = {rtype: spec["required"] for rtype, spec in entry.items() if rtype}
    global_keys = frozenset(entry.get("", {}).get("conditions", []))
    per_type = {
        rtype: frozenset(spec["conditions"]) | frozenset(service["resources"][rtype]["conditions"])
        for rtype, spec in entry.items()
        if rtype
    }
    return ActionInfo(f"{prefix}:{key}", resource_types, global_keys, per_type)


@cache
def arn_format(service: str, resource_type: str) -> str:
    return _reference()["services"][service]["resources"][resource_type]["arn"]


@cache
def arn_regex(service: str, resource_type: str) -> re.Pattern[str]:
    """A regular expression matching concrete ARNs of ``service``'s ``resource_type``."""
    text = arn_format(service, resource_type)
    parts = re.split(r"(\$\{[^}]+\})", text)
    regex = ""
    for part in parts:
        if part.startswith("${"):
            name = part[2:-1]
            if name in ("Partition", "Region", "Account"):
                regex += r"[a-z0-9-]*"
            elif name == "BucketName":
                regex += r"[^:/]+"
            elif name.endswith("WithPath") or name in ("ObjectName", "ResourceId", "LogGroupName"):
                regex += r".+"
            else:
                # Names may hold "/" (alarms, log groups, roles), never ":".
                regex += r"[^:]+"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}$")
