"""Small awacs factories for least-privilege IAM.

Actions are awacs constants (``awacs.sagemaker.CreateTrainingJob``), never strings,
so a typo is an ImportError rather than a silently useless policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from awacs.aws import (
    Action,
    Allow,
    Condition,
    Deny,
    Policy,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
)
from awacs.iam import PassRole
from awacs.sts import AssumeRole
from troposphere import iam

Resource = Any  # str or a troposphere intrinsic (Sub, GetAtt, Join)


def trust(*services: str, conditions: Condition | None = None) -> PolicyDocument:
    """Trust policy letting the given AWS service principals assume a role."""
    statement = Statement(
        Effect=Allow,
        Action=[AssumeRole],
        Principal=Principal("Service", sorted(services)),
    )
    if conditions is not None:
        statement.Condition = conditions
    return PolicyDocument(Version="2012-10-17", Statement=[statement])


def _statement(
    effect: Any,
    actions: Sequence[Action],
    resources: Resource | Iterable[Resource],
    conditions: Condition | None,
    sid: str | None,
) -> Statement:
    if isinstance(resources, (str, dict)) or not isinstance(resources, Iterable):
        resources = [resources]
    statement = Statement(Effect=effect, Action=list(actions), Resource=list(resources))
    if conditions is not None:
        statement.Condition = conditions
    if sid:
        statement.Sid = sid
    return statement


def allow(
    actions: Sequence[Action],
    resources: Resource | Iterable[Resource],
    conditions: Condition | None = None,
    sid: str | None = None,
) -> Statement:
    """An Allow statement; ``resources`` may be one value or several."""
    return _statement(Allow, actions, resources, conditions, sid)


def deny(
    actions: Sequence[Action],
    resources: Resource | Iterable[Resource],
    conditions: Condition | None = None,
    sid: str | None = None,
) -> Statement:
    """A Deny statement (TLS-only bucket policies and the like)."""
    return _statement(Deny, actions, resources, conditions, sid)


def pass_role(
    roles: Resource | Iterable[Resource], services: str | list[str], sid: str | None = None
) -> Statement:
    """PassRole on ``roles``, only to ``services`` (one principal or a list of them).

    Without the ``iam:PassedToService`` condition a role could be handed to any service
    that accepts roles, with whatever that service can then do as it.
    """
    return allow(
        [PassRole], roles, Condition(StringEquals("iam:PassedToService", services)), sid
    )


def document(*statements: Statement) -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=list(statements))


def inline_policy(name: str, *statements: Statement) -> iam.Policy:
    """An inline policy for ``AWS::IAM::Role.Policies``."""
    return iam.Policy(PolicyName=name, PolicyDocument=document(*statements))


__all__ = ["Policy", "allow", "deny", "document", "inline_policy", "pass_role", "trust"]
