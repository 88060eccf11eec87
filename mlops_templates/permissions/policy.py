"""IAM policy evaluation for one request: enough of the real algorithm to decide whether
a role's identity policies allow an action on a resource in a given request context.

Implemented as the IAM documentation describes it ("Policy evaluation logic"): an
explicit Deny wins, otherwise an Allow is needed. ``Action``/``NotAction`` match
case-insensitively with ``*`` and ``?``; ``Resource``/``NotResource`` match
case-sensitively with the same wildcards. Condition keys are case-insensitive; a key
absent from the request context fails every operator except the negated ones
(``StringNotEquals``, ``ArnNotLike``, ...), ``Null`` and the ``...IfExists`` variants,
and ``ForAllValues`` over an absent key. Policy variables are not expanded (the stacks
use none).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ContextValue = str | Sequence[str] | bool


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it: the action, the resource ARN and the context keys."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    def value(self, key: str) -> ContextValue | None:
        lowered = key.lower()
        for name, value in self.context.items():
            if name.lower() == lowered:
                return value
        return None


@lru_cache(maxsize=4096)
def _pattern(text: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in text
    )
    return re.compile(f"^{regex}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's ``*``/``?`` matching."""
    return bool(_pattern(pattern, case_sensitive).match(value))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    return any(wildcard_match(p, action, case_sensitive=False) for p in patterns)


def _resource_matches(patterns: Iterable[str], resource: str) -> bool:
    return any(wildcard_match(p, resource) for p in patterns)


def _string_compare(op: str, policy_value: str, value: str) -> bool:
    if op == "StringEquals":
        return policy_value == value
    if op == "StringEqualsIgnoreCase":
        return policy_value.lower() == value.lower()
    if op in ("StringLike", "ArnLike", "ArnEquals"):
        return wildcard_match(policy_value, value)
    if op == "Bool":
        return str(policy_value).lower() == str(value).lower()
    if op == "IpAddress":
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(policy_value, strict=False)
        except ValueError:
            return False
    if op.startswith("Numeric"):
        a, b = float(value), float(policy_value)
        return {
            "NumericEquals": a == b,
            "NumericLessThan": a < b,
            "NumericLessThanEquals": a <= b,
            "NumericGreaterThan": a > b,
            "NumericGreaterThanEquals": a >= b,
        }[op]
    raise ValueError(f"condition operator {op} is not supported by this evaluator")


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NotIpAddress": "IpAddress",
    "NumericNotEquals": "NumericEquals",
}


def _condition_holds(operator: str, key: str, policy_values: list[Any], request: Request) -> bool:
    qualifier = ""
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        qualifier, _, operator = operator.partition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    value = request.value(key)
    if operator == "Null":
        wanted = str(policy_values[0]).lower() == "true"
        return (value is None) == wanted
    if value is None:
        if qualifier == "ForAllValues" or if_exists:
            return True
        return operator in _NEGATED
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    values = [str(v) for v in _as_list(value)] if not isinstance(value, bool) else [str(value)]
    strings = [str(v) for v in policy_values]

    def single(v: str) -> bool:
        return any(_string_compare(base, p, v) for p in strings)

    # A set operator applies the (possibly negated) operator to each request value:
    # ForAllValues:StringNotLike holds when no value is like any of the policy's.
    if qualifier == "ForAllValues":
        return all(single(v) != negated for v in values)
    if qualifier == "ForAnyValue":
        return any(single(v) != negated for v in values)
    result = any(single(v) for v in values)
    return not result if negated else result


def _conditions_hold(conditions: Mapping[str, Mapping[str, Any]] | None, request: Request) -> bool:
    for operator, entries in (conditions or {}).items():
        for key, values in entries.items():
            if not _condition_holds(operator, key, _as_list(values), request):
                return False
    return True


def _statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        action_ok = _action_matches(_as_list(statement["Action"]), request.action)
    elif "NotAction" in statement:
        action_ok = not _action_matches(_as_list(statement["NotAction"]), request.action)
    else:
        return False
    if "Resource" in statement:
        resource_ok = _resource_matches(_as_list(statement["Resource"]), request.resource)
    elif "NotResource" in statement:
        resource_ok = not _resource_matches(_as_list(statement["NotResource"]), request.resource)
    else:
        return False
    return action_ok and resource_ok and _conditions_hold(statement.get("Condition"), request)


def decide(documents: Iterable[Mapping[str, Any]], request: Request) -> str:
    """``"Allow"``, ``"Deny"`` (explicit) or ``"ImplicitDeny"`` for ``request``."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not _statement_applies(statement, request):
                continue
            if statement.get("Effect") == "Deny":
                return "Deny"
            if statement.get("Effect") == "Allow":
                allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def allows(documents: Iterable[Mapping[str, Any]], request: Request) -> bool:
    return decide(documents, request) == "Allow"
