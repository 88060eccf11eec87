"""Small awacs factories for least-privilege IAM.

Actions are awacs constants (``awacs.sagemaker.CreateTrainingJob``), never strings,
so a typo is an ImportError rather than a silently useless policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from awacs import logs as logs_actions
from awacs import xray as xray_actions
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


def state_machine_logs_and_traces() -> Statement:
    """What a state machine's role needs to deliver its execution logs to CloudWatch Logs
    and its traces to X-Ray. Log delivery and X-Ray APIs support no resource-level
    permissions (Step Functions developer guide, "IAM policies for logging to CloudWatch
    Logs" and "IAM policies for using AWS X-Ray")."""
    return allow(
        [
            logs_actions.CreateLogDelivery, logs_actions.GetLogDelivery, logs_actions.UpdateLogDelivery,
            logs_actions.DeleteLogDelivery, logs_actions.ListLogDeliveries, logs_actions.PutResourcePolicy,
            logs_actions.DescribeResourcePolicies, logs_actions.DescribeLogGroups,
            xray_actions.PutTraceSegments, xray_actions.PutTelemetryRecords,
            xray_actions.GetSamplingRules, xray_actions.GetSamplingTargets,
        ],
        "*",
        sid="LogsAndTraces",
    )


def document(*statements: Statement) -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=list(statements))


def inline_policy(name: str, *statements: Statement) -> iam.Policy:
    """An inline policy for ``AWS::IAM::Role.Policies``."""
    return iam.Policy(PolicyName=name, PolicyDocument=document(*statements))




#: IAM's size limits (characters, whitespace not counted): one managed policy, and all
#: inline policies of one role together.
MANAGED_POLICY_LIMIT = 6144
INLINE_POLICIES_LIMIT = 10240
#: The longest value a ``${...}`` in a ``Fn::Sub`` can take, for size estimates.
SUB_LENGTHS = {
    "AWS::Partition": len("aws-us-gov"),
    "AWS::Region": len("ap-southeast-2"),
    "AWS::AccountId": 12,
    "AWS::URLSuffix": len("amazonaws.com.cn"),
}
DEFAULT_SUB_LENGTH = 64


def estimated_size(node: Any, lengths: dict[str, int] | None = None) -> int:
    """Characters ``node`` (a policy document or statement, troposphere/awacs objects
    allowed) takes once CloudFormation resolves it, whitespace excluded, taking every
    ``${...}`` at its longest (``SUB_LENGTHS``, then ``lengths``; others at 64)."""
    import json
    import re

    from troposphere import encode_to_dict

    known = {**SUB_LENGTHS, **(lengths or {})}

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Fn::Sub"}:
                text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
                return re.sub(
                    r"\$\{([^}]+)\}",
                    lambda m: "x" * known.get(m.group(1), DEFAULT_SUB_LENGTH),
                    text,
                )
            if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
                return "x" * 2 * DEFAULT_SUB_LENGTH
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    text = json.dumps(plain(encode_to_dict(node)), separators=(",", ":"))
    return len(re.sub(r"\s", "", text))


def pack(
    statements: Sequence[Statement],
    limit: int = MANAGED_POLICY_LIMIT,
    lengths: dict[str, int] | None = None,
) -> list[list[Statement]]:
    """``statements`` in order, split into documents that each fit ``limit``
    (``lengths``: the longest values of ``${...}`` names, see :func:`estimated_size`)."""
    overhead = estimated_size(document())
    packs: list[list[Statement]] = [[]]
    used = overhead
    for statement in statements:
        size = estimated_size(statement, lengths) + 1
        if size + overhead > limit:
            raise ValueError(f"statement {getattr(statement, 'Sid', '?')} alone exceeds {limit} characters")
        if used + size > limit and packs[-1]:
            packs.append([])
            used = overhead
        packs[-1].append(statement)
        used += size
    return packs


__all__ = [
    "Policy", "allow", "deny", "document", "estimated_size", "inline_policy", "pack", "pass_role",
    "trust",
]
