"""The permissions boundary of the roles the per-run stacks create.

The pipeline's CloudFormation role creates IAM roles for deploy-prd (its functions, hooks,
monitor, CodeDeploy) and the batch stack. Without a boundary, whoever can change a per-run
template could declare a role with any policy and hand it to Lambda or Step Functions: the
CloudFormation role's own scope would bound nothing. With one, the CloudFormation role may
create a role, or add permissions to it, only with the project's boundary
(:data:`scopes.BOUNDED`), and a role can never do more than the boundary allows, whatever
its policies say (IAM User Guide, "Permissions boundaries for IAM entities": a request is
allowed only if both the identity policies and the boundary allow it).

The boundary is generated like the CloudFormation role's policies: every action the
per-run stacks' roles are given (:func:`role_actions`), on the project's resources of the
IAM resource types the action acts on (:func:`scopes.boundary_scope`), or on ``*`` for
actions without resource-level permissions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from awacs.aws import Statement
from troposphere import Template

from mlops_templates.permissions import data
from mlops_templates.permissions.grants import Scope, render

ROLE = "AWS::IAM::Role"


def role_actions(templates: Iterable[Template]) -> set[str]:
    """Every action an ``Allow`` statement of a role's inline policies names, in
    ``templates`` (the per-run stacks as rendered)."""
    found: set[str] = set()
    for template in templates:
        for resource in template.resources.values():
            if resource.resource_type != ROLE:
                continue
            for policy in resource.to_dict()["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    if statement["Effect"] != "Allow":
                        continue
                    actions = statement["Action"]
                    found.update([actions] if isinstance(actions, str) else actions)
    return found


def patterns(name: str, scope: Scope) -> tuple[Any, ...]:
    """The ARN patterns ``name`` may act on within ``scope``: those of every resource type it
    requires and of the optional ones the scope defines; ``*`` without resource-level
    permissions; the scope's override where it has one."""
    info = data.action(name)
    if info is None:
        raise KeyError(f"boundary: {name} is not in the Service Authorization Reference")
    if name in scope.overrides:
        return tuple(scope.overrides[name])
    if not info.resource_types:
        return ("*",)
    service = name.split(":")[0]
    required = [(service, t) for t, needed in info.resource_types.items() if needed]
    # IAM authorizes a request on every resource it names, the optional ones too (the
    # security groups of a network interface): those the scope defines come along.
    optional = [(service, t) for t, needed in info.resource_types.items() if not needed and scope.defines((service, t))]
    missing = [t for _, t in required if not scope.defines((service, t))]
    if missing or not required + optional:
        wanted = ", ".join(missing or info.resource_types)
        raise KeyError(f"boundary: {name} acts on {wanted}: add its ARN patterns to scopes.boundary_scope")
    types = required + optional
    return tuple(dict.fromkeys(p for t in types for p in scope.patterns(t)))


def statements(actions: Iterable[str], scope: Scope) -> list[Statement]:
    """One statement per set of ARN patterns, allowing the actions that act on it."""
    table: dict[tuple[tuple[Any, ...], str, str], set[str]] = {}
    for name in sorted(set(actions)):
        table.setdefault((patterns(name, scope), "", ""), set()).add(name)
    return render(table, scope)
