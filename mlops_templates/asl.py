"""Typed builders for the Amazon States Language (ASL).

A workflow is composed from small frozen dataclasses (:class:`Task`, :class:`Choice`,
:class:`Parallel`, :class:`Pass`, :class:`Fail`, :class:`Succeed`, with :class:`Retry`
and :class:`Catch`) and rendered to the plain ``dict`` that Step Functions reads, so a
definition is reviewed as Python and never as a hand-edited JSON blob.

:meth:`StateMachine.render` checks the graph before returning it (see :func:`problems`):
every transition has a target, every state is reachable from ``StartAt`` and can reach
an end, every Choice has a ``Default`` and every Task catches its errors.

Strings may carry CloudFormation ``DefinitionSubstitutions`` placeholders
(``${ArtifactBucket}``); :func:`placeholders` lists them and :func:`substitute` fills them
in the way CloudFormation does, for tests that execute a definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

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
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")
# Characters that must be escaped inside an intrinsic function's string literal.
_INTRINSIC_RESERVED = re.compile(r"([\\'{}])")


# --------------------------------------------------------------------------- intrinsics


def literal(text: str) -> str:
    """``text`` as an intrinsic-function string literal (quoted, reserved chars escaped)."""
    return "'" + _INTRINSIC_RESERVED.sub(r"\\\1", text) + "'"


def fmt(template: str, *args: str) -> str:
    """``States.Format``: ``template`` uses ``{}`` for each of ``args`` (paths or intrinsics).

    Text around the placeholders is escaped, so ``fmt("rmse < {}", "$.x")`` is safe.
    """
    pieces = template.split("{}")
    if len(pieces) - 1 != len(args):
        raise ValueError(
            f"format string {template!r} has {len(pieces) - 1} placeholders for {len(args)} arguments"
        )
    quoted = "{}".join(_INTRINSIC_RESERVED.sub(r"\\\1", piece) for piece in pieces)
    return "States.Format(" + ", ".join(["'" + quoted + "'", *args]) + ")"


def string_to_json(path: str) -> str:
    """``States.StringToJson(path)``."""
    return f"States.StringToJson({path})"


def json_merge(base: str, override: str) -> str:
    """``States.JsonMerge``: a shallow merge where keys of ``override`` win."""
    return f"States.JsonMerge({base}, {override}, false)"


def string_split(text: str, separator: str) -> str:
    """``States.StringSplit`` of an intrinsic string (``text``) on ``separator``."""
    return f"States.StringSplit({text}, {literal(separator)})"


def array_get_item(array: str, index: int) -> str:
    """``States.ArrayGetItem``: item ``index`` (from 0) of an intrinsic array."""
    return f"States.ArrayGetItem({array}, {index})"


def uuid() -> str:
    """``States.UUID()``: a random version 4 UUID (lower-case hex), new on each call."""
    return "States.UUID()"


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


# ------------------------------------------------------------------- graph inspection

_TERMINAL_TYPES = frozenset({"Succeed", "Fail"})
_FLOW_TYPES = frozenset({"Task", "Pass", "Parallel", "Map", "Wait"})


def transitions(state: Mapping[str, Any]) -> list[str]:
    """Names of the states ``state`` may go to (Next, Choice rules, Default, Catch)."""
    targets: list[str] = []
    if "Next" in state:
        targets.append(state["Next"])
    for rule in state.get("Choices", ()):
        targets.append(rule["Next"])
    if "Default" in state:
        targets.append(state["Default"])
    for catcher in state.get("Catch", ()):
        targets.append(catcher["Next"])
    return targets


def _ends(state: Mapping[str, Any]) -> bool:
    return state["Type"] in _TERMINAL_TYPES or state.get("End") is True


def scopes(
    definition: Mapping[str, Any], path: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every ``(location, states-mapping)`` scope: the top level, then each branch."""
    yield path or "(top level)", definition
    for name, state in definition["States"].items():
        for index, branch in enumerate(state.get("Branches", ())):
            yield from scopes(branch, f"{path}{name}.Branches[{index}]/")
        if "ItemProcessor" in state:
            yield from scopes(state["ItemProcessor"], f"{path}{name}.ItemProcessor/")


def all_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(name, state)`` for every state, branches included."""
    for _, scope in scopes(definition):
        yield from scope["States"].items()


def problems(definition: Mapping[str, Any]) -> list[str]:
    """Graph problems of a rendered definition; an empty list means sound.

    Checked in every scope: ``StartAt`` and all transition targets exist; each state is
    reachable from ``StartAt``; a flow state has ``Next`` or ``End``; a Choice has rules
    and a ``Default``; a Task has a ``Catch``; every state can reach an end (no dead
    ends or closed loops).
    """
    found: list[str] = []
    for where, scope in scopes(definition):
        states: Mapping[str, Mapping[str, Any]] = scope["States"]
        start = scope.get("StartAt")
        if start not in states:
            found.append(f"{where}: StartAt {start!r} is not a state")
            continue
        for name, state in states.items():
            kind = state.get("Type")
            if kind in _FLOW_TYPES and ("Next" in state) == (state.get("End") is True):
                found.append(f"{where}{name}: needs exactly one of Next or End")
            if kind == "Choice":
                if not state.get("Choices"):
                    found.append(f"{where}{name}: Choice without rules")
                if "Default" not in state:
                    found.append(f"{where}{name}: Choice without Default")
            if kind == "Task" and not state.get("Catch"):
                found.append(f"{where}{name}: Task without Catch")
            for target in transitions(state):
                if target not in states:
                    found.append(f"{where}{name}: transition to unknown state {target!r}")
        reachable = _closure([start], lambda n, states=states: transitions(states.get(n, {})))
        for name in states:
            if name not in reachable:
                found.append(f"{where}{name}: unreachable from StartAt")
        predecessors: dict[str, list[str]] = {name: [] for name in states}
        for name, state in states.items():
            for target in transitions(state):
                if target in predecessors:
                    predecessors[target].append(name)
        ends = [n for n, s in states.items() if _ends(s)]
        can_end = _closure(ends, lambda n, before=predecessors: before[n])
        for name in states:
            if name not in can_end:
                found.append(f"{where}{name}: cannot reach an end state")
    return found


def _closure(seeds: list[str], step: Any) -> set[str]:
    seen: set[str] = set()
    todo = list(seeds)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(step(name))
    return seen


# --------------------------------------------------------------- substitution helpers


def _walk_strings(value: Any, func: Any) -> Any:
    if isinstance(value, str):
        return func(value)
    if isinstance(value, Mapping):
        return {key: _walk_strings(item, func) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk_strings(item, func) for item in value]
    return value


def placeholders(definition: Any) -> set[str]:
    """Names of the ``${Name}`` DefinitionSubstitutions placeholders in string values."""
    names: set[str] = set()

    def collect(text: str) -> str:
        names.update(_PLACEHOLDER.findall(text))
        return text

    _walk_strings(definition, collect)
    return names


def substitute(definition: Any, values: Mapping[str, str]) -> Any:
    """Fill ``${Name}`` placeholders as CloudFormation's DefinitionSubstitutions does."""
    missing = placeholders(definition) - set(values)
    if missing:
        raise KeyError(f"no value for placeholder(s): {', '.join(sorted(missing))}")
    return _walk_strings(
        definition, lambda text: _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
    )


__all__ = [
    "ALL_ERRORS",
    "And",
    "Catch",
    "Choice",
    "Compare",
    "Condition",
    "Fail",
    "Not",
    "Or",
    "Parallel",
    "Pass",
    "Retry",
    "Rule",
    "State",
    "StateMachine",
    "Succeed",
    "Task",
    "all_states",
    "array_get_item",
    "fmt",
    "is_numeric",
    "is_present",
    "is_string",
    "json_merge",
    "literal",
    "placeholders",
    "problems",
    "scopes",
    "string_split",
    "string_to_json",
    "substitute",
    "transitions",
    "uuid",
]
