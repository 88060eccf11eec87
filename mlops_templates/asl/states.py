"""The typed states, conditions, retries and catches, and the state machine that renders
them (checking its graph on the way)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from mlops_templates.asl.graph import problems

#: The error that matches every error (including runtime errors) in Retry and Catch.
ALL_ERRORS = "States.ALL"

#: Comparison operators a Choice rule may use (ASL specification, "Choice Rules").
COMPARISON_OPERATORS = frozenset(
    {
        "BooleanEquals",
        "BooleanEqualsPath",
        "IsBoolean",
        "IsNull",
        "IsNumeric",
        "IsPresent",
        "IsString",
        "IsTimestamp",
        "NumericEquals",
        "NumericEqualsPath",
        "NumericGreaterThan",
        "NumericGreaterThanPath",
        "NumericGreaterThanEquals",
        "NumericGreaterThanEqualsPath",
        "NumericLessThan",
        "NumericLessThanPath",
        "NumericLessThanEquals",
        "NumericLessThanEqualsPath",
        "StringEquals",
        "StringEqualsPath",
        "StringGreaterThan",
        "StringGreaterThanPath",
        "StringGreaterThanEquals",
        "StringGreaterThanEqualsPath",
        "StringLessThan",
        "StringLessThanPath",
        "StringLessThanEquals",
        "StringLessThanEqualsPath",
        "StringMatches",
        "TimestampEquals",
        "TimestampEqualsPath",
        "TimestampGreaterThan",
        "TimestampGreaterThanPath",
        "TimestampGreaterThanEquals",
        "TimestampGreaterThanEqualsPath",
        "TimestampLessThan",
        "TimestampLessThanPath",
        "TimestampLessThanEquals",
        "TimestampLessThanEqualsPath",
    }
)

_STATE_NAME_MAX = 80


# ------------------------------------------------------------------- retry and catch


@dataclass(frozen=True)
class Retry:
    """A retrier: exponential backoff on the listed errors."""

    errors: Sequence[str]
    interval_seconds: int = 1
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: int | None = None
    jitter: Literal["FULL", "NONE"] | None = None

    def render(self) -> dict[str, Any]:
        if not self.errors:
            raise ValueError("a Retry needs at least one error name")
        out: dict[str, Any] = {
            "ErrorEquals": list(self.errors),
            "IntervalSeconds": self.interval_seconds,
            "MaxAttempts": self.max_attempts,
            "BackoffRate": self.backoff_rate,
        }
        if self.max_delay_seconds is not None:
            out["MaxDelaySeconds"] = self.max_delay_seconds
        if self.jitter is not None:
            out["JitterStrategy"] = self.jitter
        return out


@dataclass(frozen=True)
class Catch:
    """A catcher: on the listed errors go to ``next``.

    ``result_path`` keeps the state's input and adds ``{"Error", "Cause"}`` at that
    path, so the error survives to the notification and the Fail state.
    """

    next: str
    result_path: str | None = "$.Failure"
    errors: Sequence[str] = (ALL_ERRORS,)

    def render(self) -> dict[str, Any]:
        return {"ErrorEquals": list(self.errors), "ResultPath": self.result_path, "Next": self.next}


# ------------------------------------------------------------------------- conditions


class Condition:
    """A Choice rule's Boolean expression."""

    def render(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Compare(Condition):
    """``{"Variable": variable, operator: value}``."""

    variable: str
    operator: str
    value: Any

    def __post_init__(self) -> None:
        if self.operator not in COMPARISON_OPERATORS:
            raise ValueError(f"unknown Choice comparison operator '{self.operator}'")
        if not self.variable.startswith("$"):
            raise ValueError(f"a Choice Variable must be a path, got {self.variable!r}")

    def render(self) -> dict[str, Any]:
        return {"Variable": self.variable, self.operator: self.value}


@dataclass(frozen=True)
class And(Condition):
    conditions: Sequence[Condition]

    def render(self) -> dict[str, Any]:
        return {"And": [c.render() for c in self.conditions]}


@dataclass(frozen=True)
class Or(Condition):
    conditions: Sequence[Condition]

    def render(self) -> dict[str, Any]:
        return {"Or": [c.render() for c in self.conditions]}


@dataclass(frozen=True)
class Not(Condition):
    condition: Condition

    def render(self) -> dict[str, Any]:
        return {"Not": self.condition.render()}


def is_present(variable: str, present: bool = True) -> Compare:
    return Compare(variable, "IsPresent", present)


def is_string(variable: str) -> Compare:
    return Compare(variable, "IsString", True)


def is_numeric(variable: str) -> Compare:
    return Compare(variable, "IsNumeric", True)


@dataclass(frozen=True)
class Rule:
    """One Choice rule: when ``condition`` holds, go to ``next``."""

    condition: Condition
    next: str

    def render(self) -> dict[str, Any]:
        return {**self.condition.render(), "Next": self.next}


# ----------------------------------------------------------------------------- states


@dataclass(frozen=True, kw_only=True)
class State:
    """Fields every state has. Subclasses render their own fields in ASL order."""

    TYPE: ClassVar[str] = ""
    name: str
    comment: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= _STATE_NAME_MAX:
            raise ValueError(f"state name {self.name!r} must be 1-{_STATE_NAME_MAX} characters")

    def _head(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.TYPE}
        if self.comment:
            out["Comment"] = self.comment
        return out

    @staticmethod
    def _put(out: dict[str, Any], key: str, value: Any) -> None:
        if value is not None:
            out[key] = value

    def _handlers(
        self, out: dict[str, Any], retry: Sequence[Retry], catch: Sequence[Catch]
    ) -> None:
        # ASL: States.ALL must stand alone and in the last retrier or catcher.
        for field_name, handlers in (("Retry", retry), ("Catch", catch)):
            for index, handler in enumerate(handlers):
                errors = list(handler.errors)
                if ALL_ERRORS in errors and (len(errors) > 1 or index < len(handlers) - 1):
                    raise ValueError(
                        f"state {self.name!r}: {ALL_ERRORS} must be alone in the last {field_name} entry"
                    )
            if handlers:
                out[field_name] = [handler.render() for handler in handlers]

    def _tail(self, out: dict[str, Any], next_state: str | None) -> dict[str, Any]:
        if next_state is None:
            out["End"] = True
        else:
            out["Next"] = next_state
        return out

    def render(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


_UNSET: Any = object()  # distinguishes "no ResultPath" from ResultPath null


@dataclass(frozen=True, kw_only=True)
class Pass(State):
    """Shapes data: ``parameters`` (with ``.$`` paths and intrinsics) or a fixed ``result``."""

    TYPE: ClassVar[str] = "Pass"
    next: str | None = None
    input_path: str | None = None
    parameters: Mapping[str, Any] | None = None
    result: Any = _UNSET
    result_path: str | None = _UNSET
    output_path: str | None = None

    def render(self) -> dict[str, Any]:
        out = self._head()
        self._put(out, "InputPath", self.input_path)
        if self.parameters is not None:
            out["Parameters"] = dict(self.parameters)
        if self.result is not _UNSET:
            out["Result"] = self.result
        if self.result_path is not _UNSET:
            out["ResultPath"] = self.result_path
        self._put(out, "OutputPath", self.output_path)
        return self._tail(out, self.next)


@dataclass(frozen=True, kw_only=True)
class _WorkState(State):
    """Fields of the states that do work (Task, Parallel): their result can be selected
    and placed, and their errors retried and caught."""

    next: str | None = None
    result_selector: Mapping[str, Any] | None = None
    result_path: str | None = _UNSET
    output_path: str | None = None
    retry: Sequence[Retry] = ()
    catch: Sequence[Catch] = ()

    def _finish(self, out: dict[str, Any]) -> dict[str, Any]:
        """Render the shared fields after the state's own, in ASL order."""
        if self.result_selector is not None:
            out["ResultSelector"] = dict(self.result_selector)
        if self.result_path is not _UNSET:
            out["ResultPath"] = self.result_path
        self._put(out, "OutputPath", self.output_path)
        self._handlers(out, self.retry, self.catch)
        return self._tail(out, self.next)


@dataclass(frozen=True, kw_only=True)
class Task(_WorkState):
    """Calls an AWS service integration (``resource``) with ``parameters``."""

    TYPE: ClassVar[str] = "Task"
    resource: str
    parameters: Mapping[str, Any] | None = None
    timeout_seconds: int | None = None

    def render(self) -> dict[str, Any]:
        out = self._head()
        out["Resource"] = self.resource
        if self.parameters is not None:
            out["Parameters"] = dict(self.parameters)
        self._put(out, "TimeoutSeconds", self.timeout_seconds)
        return self._finish(out)


@dataclass(frozen=True, kw_only=True)
class Choice(State):
    """Branches on the first matching rule; ``default`` when none matches."""

    TYPE: ClassVar[str] = "Choice"
    rules: Sequence[Rule]
    default: str | None = None

    def render(self) -> dict[str, Any]:
        if not self.rules:
            raise ValueError(f"Choice state {self.name!r} needs at least one rule")
        out = self._head()
        out["Choices"] = [rule.render() for rule in self.rules]
        self._put(out, "Default", self.default)
        return out


@dataclass(frozen=True, kw_only=True)
class Parallel(_WorkState):
    """Runs ``branches`` concurrently; the result is the list of branch outputs."""

    TYPE: ClassVar[str] = "Parallel"
    branches: Sequence[StateMachine]

    def render(self) -> dict[str, Any]:
        out = self._head()
        out["Branches"] = [branch.render(branch=True) for branch in self.branches]
        return self._finish(out)


@dataclass(frozen=True, kw_only=True)
class Wait(State):
    """Waits ``seconds`` before going on."""

    TYPE: ClassVar[str] = "Wait"
    seconds: int
    next: str | None = None

    def render(self) -> dict[str, Any]:
        out = self._head()
        out["Seconds"] = self.seconds
        return self._tail(out, self.next)


@dataclass(frozen=True, kw_only=True)
class Fail(State):
    """Ends the execution (or branch) as failed, with a fixed or path-selected error."""

    TYPE: ClassVar[str] = "Fail"
    error: str | None = None
    cause: str | None = None
    error_path: str | None = None
    cause_path: str | None = None

    def render(self) -> dict[str, Any]:
        if self.error and self.error_path or self.cause and self.cause_path:
            raise ValueError(
                f"Fail state {self.name!r}: give Error or ErrorPath, Cause or CausePath"
            )
        out = self._head()
        self._put(out, "Error", self.error)
        self._put(out, "ErrorPath", self.error_path)
        self._put(out, "Cause", self.cause)
        self._put(out, "CausePath", self.cause_path)
        return out


@dataclass(frozen=True, kw_only=True)
class Succeed(State):
    TYPE: ClassVar[str] = "Succeed"
    output_path: str | None = None

    def render(self) -> dict[str, Any]:
        out = self._head()
        self._put(out, "OutputPath", self.output_path)
        return out


@dataclass(frozen=True)
class StateMachine:
    """A state machine (or a Parallel branch): states in order, starting at the first."""

    states: Sequence[State]
    comment: str | None = None
    timeout_seconds: int | None = None
    start_at: str | None = None
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(state.name for state in self.states)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate state names: {', '.join(duplicates)}")
        if not names:
            raise ValueError("a state machine needs at least one state")
        object.__setattr__(self, "_names", names)

    def render(self, branch: bool = False) -> dict[str, Any]:
        """The definition as a dict; raises ``ValueError`` listing any graph problem."""
        out: dict[str, Any] = {}
        if self.comment:
            out["Comment"] = self.comment
        out["StartAt"] = self.start_at or self._names[0]
        if self.timeout_seconds is not None and not branch:
            out["TimeoutSeconds"] = self.timeout_seconds
        out["States"] = {state.name: state.render() for state in self.states}
        if not branch:
            found = problems(out)
            if found:
                raise ValueError("invalid state machine:\n  " + "\n  ".join(found))
        return out

