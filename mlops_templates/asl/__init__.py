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

from mlops_templates.asl.graph import (
    all_states,
    placeholders,
    problems,
    scopes,
    substitute,
    transitions,
)
from mlops_templates.asl.intrinsics import (
    array_get_item,
    fmt,
    json_merge,
    literal,
    string_split,
    string_to_json,
    uuid,
)
from mlops_templates.asl.states import (
    ALL_ERRORS,
    And,
    Catch,
    Choice,
    Compare,
    Condition,
    Fail,
    Not,
    Or,
    Parallel,
    Pass,
    Retry,
    Rule,
    State,
    StateMachine,
    Succeed,
    Task,
    Wait,
    is_numeric,
    is_present,
    is_string,
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
    "Wait",
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
