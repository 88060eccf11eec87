"""Inspection of a rendered definition: transitions, reachability, and the
``DefinitionSubstitutions`` placeholders."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")

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
