"""Deploying roles' policies, generated from the permission table.

A role that deploys stacks gets, for every resource type of those stacks, every action
CloudFormation's handler of that type calls (``data.required_actions``: the registry
schemas minus the withheld actions), each on the ARNs of the resource type the action
acts on, as the role's :class:`Scope` names them. The scope is the only hand-written
part: which ARNs of a resource type belong to the project.

Resources whose names CloudFormation generates (models, endpoint configs, keys, ...)
cannot be scoped by name. Their statements are split: the actions their handler calls
while **creating** them are allowed on the type's wildcard ARN (the resource does not
exist yet, so its tags cannot be checked), every other action only under an
``aws:ResourceTag`` condition on the project's tag, where the action supports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from awacs.aws import Action, Condition, Statement, StringEquals

from mlops_templates import iam as iamdoc
from mlops_templates.permissions import data
from mlops_templates.permissions.deployed import TYPES

IamType = tuple[str, str]  # (service prefix, resource type of the IAM reference)
ANY = ("*", "*")  # actions without resource-level permissions


@dataclass(frozen=True)
class Scope:
    """The ARNs a deploying role may act on, per IAM resource type.

    ``resources``: IAM resource type -> ARN patterns (strings or ``Fn::Sub``).
    ``tagged``: resource types scoped by ``tag`` instead of by name (generated names).
    ``tag``: ``(tag key, value)`` the project's resources carry (``common.tags``).
    ``overrides`` and ``conditions`` narrow single actions further (``iam:PassRole`` to
    the roles a stack may pass, and only to the services it passes them to).
    """

    resources: Mapping[IamType, tuple[Any, ...]]
    tagged: frozenset[IamType] = frozenset()
    tag: tuple[str, Any] | None = None
    tag_operator: type = StringEquals
    #: Action -> the ARN patterns it may use instead of its resource type's.
    overrides: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    #: Action -> a condition every grant of it carries (e.g. ``iam:PassedToService``).
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    #: Resource types this deployment never has (no source connection with CodeCommit):
    #: actions that need one are not granted.
    absent: frozenset[IamType] = frozenset()

    def defines(self, iam_type: IamType) -> bool:
        return iam_type in self.resources

    def patterns(self, iam_type: IamType) -> tuple[Any, ...]:
        if iam_type == ANY:
            return ("*",)
        try:
            return self.resources[iam_type]
        except KeyError:
            raise KeyError(
                f"no scope for {iam_type[0]} resource type '{iam_type[1]}': add its ARN "
                "patterns to the deploying role's Scope"
            ) from None


def own_type(kind: str) -> IamType | None:
    spec = TYPES.get(kind)
    if spec is None or spec.service is None or spec.iam_type is None:
        return None
    return (spec.service, spec.iam_type)


def action_types(kind: str, info: data.ActionInfo) -> list[IamType]:
    """The IAM resource types ``info`` acts on when the handler of ``kind`` calls it.

    The resource's own type when the action applies to it; otherwise the types the
    action requires (all of them), or, when it requires none, any of its types (the
    first one the scope defines is used).
    """
    service = info.name.split(":")[0]
    if not info.resource_types:
        return [ANY]
    own = own_type(kind)
    required = [r for r, req in info.resource_types.items() if req]
    if (
        own is not None
        and own[0] == service
        and own[1] in info.resource_types
        and (not required or own[1] in required)
    ):
        return [own]
    if required:
        return [(service, r) for r in required]
    if own is not None and own[0] == service:
        return [own]
    return [(service, r) for r in info.resource_types]


def _scoped_types(kind: str, info: data.ActionInfo, scope: Scope) -> list[IamType]:
    types = action_types(kind, info)
    service = info.name.split(":")[0]
    if service == "ec2" and types != [ANY]:
        # EC2 authorizes a request on every resource it names (the subnet of a route-table
        # association, the VPC of a subnet), not only on the required one.
        extra = [(service, r) for r in info.resource_types if scope.defines((service, r))]
        return sorted(set(types) | set(extra))
    if types == [ANY] or any(req for req in info.resource_types.values()):
        return types
    if len(types) > 1:
        if all(t in scope.absent for t in types):
            return types  # the caller grants nothing
        defined = [t for t in types if scope.defines(t)]
        if not defined:
            names = ", ".join(t[1] for t in types)
            raise KeyError(f"{kind}: {info.name} acts on one of {names}: add one to the Scope")
        return defined[:1]
    return types


def _tag_condition(scope: Scope, mode: str) -> Any:
    assert scope.tag is not None
    key, value = scope.tag
    kind = "aws:ResourceTag" if mode == "resource" else "aws:RequestTag"
    return scope.tag_operator(f"{kind}/{key}", value)


#: Actions that exist under two service prefixes since the CodeConnections rename; IAM
#: evaluates the one whose prefix matches the connection's ARN.
TWINS = {"codestar-connections": "codeconnections"}


#: Create calls whose handler is known to send the resource's tags with the request, so
#: an ``aws:RequestTag`` condition holds (aws-cloudformation-resource-providers-kms,
#: key/CreateHandler.java: ``createCustomerMasterKey(resourceModel, tags)``).
CREATE_SENDS_TAGS = frozenset({"kms:CreateKey"})
TAGGING = ("TagResource", "AddTags")


def _tag_mode(kind: str, name: str, info: data.ActionInfo, iam_type: IamType, scope: Scope) -> str:
    """``resource``, ``request`` or ``""``: which tag condition a grant carries.

    Handlers read back what they create, so create- and read-time calls never depend on
    ``aws:ResourceTag``; tagging calls, and creates known to send the tags, carry
    ``aws:RequestTag``.
    """
    own = own_type(kind)
    if scope.tag is None or own not in scope.tagged or iam_type not in (own, ANY):
        return ""
    key = scope.tag[0]
    creating = name in data.handler_actions(kind, ("create", "read"))
    if not creating:
        if iam_type == own and info.supports(f"aws:ResourceTag/{key}", iam_type[1]):
            return "resource"
        return ""
    sends_tags = info.name.split(":")[1] in TAGGING or info.name in CREATE_SENDS_TAGS
    if sends_tags and info.supports(f"aws:RequestTag/{key}", None if iam_type == ANY else iam_type[1]):
        return "request"
    return ""


def grants(resource_types: Iterable[str], scope: Scope) -> dict[tuple[tuple[Any, ...], str, str], set[str]]:
    """``(ARN patterns, tag condition, extra condition action) -> actions``."""
    result: dict[tuple[tuple[Any, ...], str, str], set[str]] = {}
    for kind in sorted(set(resource_types)):
        for name in sorted(data.required_actions(kind)):
            info = data.action(name)
            if info is None:
                raise KeyError(
                    f"{kind}: handler action {name} is not in the Service Authorization "
                    "Reference; list it in withheld_permissions.json with the reason"
                )
            for grant_name, iam_types in _variants(kind, info, scope):
                if any(t in scope.absent for t in iam_types):
                    continue
                for iam_type in iam_types:
                    mode = _tag_mode(kind, name, info, iam_type, scope)
                    patterns = scope.overrides.get(grant_name) or scope.patterns(iam_type)
                    conditioned = grant_name if grant_name in scope.conditions else ""
                    result.setdefault((patterns, mode, conditioned), set()).add(grant_name)
    return result


def _variants(kind: str, info: data.ActionInfo, scope: Scope) -> list[tuple[str, list[IamType]]]:
    """The action, and its twin under the renamed service prefix where the scope has one."""
    service, _, short = info.name.partition(":")
    found = []
    if service in TWINS and (service, "Connection") in scope.absent:
        return [(info.name, [(service, "Connection")])]
    if service in TWINS:
        twin = data.action(f"{TWINS[service]}:{short}")
        if twin is not None:
            types = [
                (TWINS[service], r) for r, req in twin.resource_types.items() if req
            ] or [ANY]
            if all(t == ANY or scope.defines(t) for t in types):
                found.append((twin.name, types))
        types = _scoped_types(kind, info, scope)
        if all(t == ANY or scope.defines(t) for t in types):
            found.append((info.name, types))
        if not found:
            raise KeyError(f"{kind}: no scope for {info.name} or its {TWINS[service]} twin")
        return found
    return [(info.name, _scoped_types(kind, info, scope))]


def _sid(patterns: tuple[Any, ...], mode: str, actions: set[str]) -> str:
    services = sorted({a.split(":")[0] for a in actions})
    words = [w for s in services for w in re.split(r"[^a-zA-Z0-9]+", s)]
    text = "".join(w[:1].upper() + w[1:] for w in words if w)
    if patterns == ("*",):
        text += "Unscoped"
    return text + {"resource": "Tagged", "request": "TaggedRequest"}.get(mode, "")


def statements(resource_types: Iterable[str], scope: Scope) -> list[Statement]:
    """Policy statements granting every required handler action of ``resource_types``."""
    return render(grants(resource_types, scope), scope)


def render(table: dict[tuple[tuple[Any, ...], str, str], set[str]], scope: Scope) -> list[Statement]:
    """One statement per ``(ARN patterns, tag condition, extra condition action)`` of
    ``table`` (as :func:`grants` gives it), allowing its actions, with a unique Sid."""
    out: list[Statement] = []
    used: dict[str, int] = {}
    for (patterns, mode, conditioned), actions in sorted(
        table.items(), key=lambda item: (min(item[1]), item[0][1], item[0][2])
    ):
        sid = _sid(patterns, mode, actions)
        used[sid] = used.get(sid, 0) + 1
        if used[sid] > 1:
            sid = f"{sid}{used[sid]}"
        parts = []
        if mode:
            parts.append(_tag_condition(scope, mode))
        if conditioned:
            parts.extend(scope.conditions[conditioned].conditions)
        out.append(
            iamdoc.allow(
                [Action(*a.split(":", 1)) for a in sorted(actions)],
                list(patterns),
                conditions=Condition(parts) if parts else None,
                sid=sid,
            )
        )
    return out
