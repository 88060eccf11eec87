"""The typed ASL builders: rendering, intrinsic escaping, graph checks, substitutions."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_templates import asl
from mlops_templates.asl import (
    And,
    Catch,
    Choice,
    Compare,
    Fail,
    Not,
    Or,
    Parallel,
    Pass,
    Retry,
    Rule,
    StateMachine,
    Succeed,
    Task,
)

from .conftest import REPO

ASL_VALIDATOR = REPO / ".venv" / "node" / "node_modules" / ".bin" / "asl-validator"
SNS = "arn:aws:states:::sns:publish"


def _task(name: str, next: str | None, catch_to: str = "Failed") -> Task:
    return Task(
        name=name,
        resource=SNS,
        parameters={"TopicArn": "${Topic}", "Message": "m"},
        catch=[Catch(catch_to)],
        next=next,
    )


def _small_machine() -> StateMachine:
    return StateMachine(
        [
            Choice(
                name="Check",
                rules=[Rule(And([asl.is_present("$.x"), asl.is_numeric("$.x")]), "Work")],
                default="Failed",
            ),
            Parallel(
                name="Work",
                branches=[
                    StateMachine(
                        [
                            _task("A", None, catch_to="AFailed"),
                            Fail(name="AFailed", error="AFailed", cause_path="$.Failure.Cause"),
                        ]
                    ),
                    StateMachine([Pass(name="B", result={"b": 1}, result_path="$.b")]),
                ],
                output_path="$[0]",
                catch=[Catch("Failed")],
                next="Done",
            ),
            Succeed(name="Done"),
            Fail(name="Failed", error_path="$.Failure.Error", cause_path="$.Failure.Cause"),
        ],
        comment="test",
    )


# ------------------------------------------------------------------------ intrinsics


def test_literal_escapes_the_reserved_characters() -> None:
    assert asl.literal("a'b{c}d\\e") == r"'a\'b\{c\}d\\e'"


def test_format_escapes_text_but_keeps_placeholders() -> None:
    assert asl.fmt("x {} {'}", "$.a") == r"States.Format('x {} \{\'\}', $.a)"
    assert asl.fmt("{}-{}", "$.a", "$.b") == "States.Format('{}-{}', $.a, $.b)"


def test_format_checks_the_argument_count() -> None:
    with pytest.raises(ValueError, match="2 placeholders for 1 arguments"):
        asl.fmt("{}{}", "$.a")


def test_other_intrinsics() -> None:
    assert asl.string_to_json("$.Body") == "States.StringToJson($.Body)"
    assert asl.json_merge("$.a", "$.b") == "States.JsonMerge($.a, $.b, false)"
    assert asl.string_split("$.s", ",") == "States.StringSplit($.s, ',')"
    assert asl.array_get_item("$.a", 2) == "States.ArrayGetItem($.a, 2)"
    # Intrinsics nest: the first group of a fresh UUID.
    assert asl.array_get_item(asl.string_split(asl.uuid(), "-"), 0) == (
        "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0)"
    )


# ---------------------------------------------------------------------- rendering


def test_retry_and_catch_render() -> None:
    retry = Retry(
        ["ThrottlingException"],
        interval_seconds=2,
        max_attempts=5,
        backoff_rate=1.5,
        max_delay_seconds=30,
        jitter="FULL",
    ).render()
    assert retry == {
        "ErrorEquals": ["ThrottlingException"],
        "IntervalSeconds": 2,
        "MaxAttempts": 5,
        "BackoffRate": 1.5,
        "MaxDelaySeconds": 30,
        "JitterStrategy": "FULL",
    }
    assert Catch("Next").render() == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.Failure",
        "Next": "Next",
    }
    with pytest.raises(ValueError, match="at least one error"):
        Retry([]).render()


def test_conditions_render() -> None:
    condition = Or([Not(Compare("$.a", "StringMatches", "s3://*")), asl.is_string("$.b")])
    assert Rule(condition, "X").render() == {
        "Or": [
            {"Not": {"Variable": "$.a", "StringMatches": "s3://*"}},
            {"Variable": "$.b", "IsString": True},
        ],
        "Next": "X",
    }


@pytest.mark.parametrize(
    ("variable", "operator", "message"),
    [("$.a", "NumericLessThen", "unknown Choice comparison"), ("a", "IsPresent", "must be a path")],
)
def test_compare_rejects_typos(variable: str, operator: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Compare(variable, operator, True)


def test_states_render_type_first_and_end_when_no_next() -> None:
    rendered = Pass(name="P", parameters={"a.$": "$.b"}, result_path=None).render()
    assert list(rendered) == ["Type", "Parameters", "ResultPath", "End"]
    assert rendered["ResultPath"] is None  # null keeps the input: it must survive rendering
    task = Task(
        name="T",
        resource=SNS,
        timeout_seconds=60,
        result_selector={"x.$": "$.y"},
        retry=[Retry(["E"])],
        catch=[Catch("F")],
        next="N",
    ).render()
    assert list(task) == [
        "Type",
        "Resource",
        "TimeoutSeconds",
        "ResultSelector",
        "Retry",
        "Catch",
        "Next",
    ]
    assert "ResultPath" not in task  # left out, not null, when not given


@pytest.mark.parametrize(
    "catch",
    [[Catch("F"), Catch("G", errors=["E"])], [Catch("F", errors=["States.ALL", "E"])]],
    ids=["all-not-last", "all-not-alone"],
)
def test_states_all_must_be_alone_and_last(catch: list[Catch]) -> None:
    with pytest.raises(ValueError, match="States.ALL must be alone in the last Catch entry"):
        Task(name="T", resource=SNS, catch=catch).render()


def test_fail_takes_error_or_error_path_not_both() -> None:
    with pytest.raises(ValueError, match="Error or ErrorPath"):
        Fail(name="F", error="E", error_path="$.e").render()
    assert Fail(name="F", error="E", cause="C").render() == {
        "Type": "Fail",
        "Error": "E",
        "Cause": "C",
    }


def test_state_names_are_limited_to_80_characters() -> None:
    with pytest.raises(ValueError, match="1-80 characters"):
        Succeed(name="x" * 81)


def test_duplicate_state_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate state names: A"):
        StateMachine([Succeed(name="A"), Succeed(name="A")])


def test_machine_renders_and_is_sound() -> None:
    rendered = _small_machine().render()
    assert rendered["StartAt"] == "Check"
    assert list(rendered["States"]) == ["Check", "Work", "Done", "Failed"]
    branch = rendered["States"]["Work"]["Branches"][0]
    assert branch == {
        "StartAt": "A",
        "States": {
            "A": _task("A", None, "AFailed").render(),
            "AFailed": {"Type": "Fail", "Error": "AFailed", "CausePath": "$.Failure.Cause"},
        },
    }
    assert asl.problems(rendered) == []
    assert [name for name, _ in asl.all_states(rendered)] == [
        "Check",
        "Work",
        "Done",
        "Failed",
        "A",
        "AFailed",
        "B",
    ]


def test_machine_passes_the_asl_validator(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not ASL_VALIDATOR.exists():
        pytest.fail("asl-validator is missing: `make install` installs it")
    path = tmp_path / "small.asl.json"
    path.write_text(json.dumps(_small_machine().render()), encoding="utf-8")
    proc = subprocess.run(
        [str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -------------------------------------------------------------------- graph checks


@pytest.mark.parametrize(
    ("states", "problem"),
    [
        ([Pass(name="A", next="Nowhere")], "A: transition to unknown state 'Nowhere'"),
        ([Pass(name="A"), Succeed(name="B")], "B: unreachable from StartAt"),
        ([Task(name="A", resource=SNS)], "A: Task without Catch"),
        (
            [Choice(name="A", rules=[Rule(asl.is_present("$.x"), "B")]), Succeed(name="B")],
            "A: Choice without Default",
        ),
        ([Pass(name="A", next="B"), Pass(name="B", next="A")], "A: cannot reach an end state"),
    ],
    ids=[
        "unknown-target",
        "unreachable",
        "task-without-catch",
        "choice-without-default",
        "closed-loop",
    ],
)
def test_render_refuses_unsound_graphs(states: list[asl.State], problem: str) -> None:
    with pytest.raises(ValueError, match="invalid state machine") as err:
        StateMachine(states).render()
    assert problem in str(err.value)


def test_problems_look_inside_branches_and_at_next_and_end() -> None:
    definition = _small_machine().render()
    branch = definition["States"]["Work"]["Branches"][1]["States"]["B"]
    branch["Next"] = "Elsewhere"  # now both End and Next
    found = asl.problems(definition)
    assert "Work.Branches[1]/B: needs exactly one of Next or End" in found
    assert "Work.Branches[1]/B: transition to unknown state 'Elsewhere'" in found


def test_problems_report_a_missing_start() -> None:
    assert asl.problems({"StartAt": "X", "States": {"A": {"Type": "Succeed"}}}) == [
        "(top level): StartAt 'X' is not a state"
    ]


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.data())
def test_chains_are_sound_until_a_link_breaks(length: int, data: st.DataObject) -> None:
    """Any chain of Pass states is sound; cutting one link strands the rest."""
    names = [f"S{i}" for i in range(length)]
    states = [
        Pass(name=n, next=names[i + 1] if i + 1 < length else None) for i, n in enumerate(names)
    ]
    rendered = StateMachine(states).render()
    assert asl.problems(rendered) == []
    cut = data.draw(st.integers(min_value=0, max_value=length - 1))
    state = rendered["States"][names[cut]]
    if cut + 1 < length:
        del state["Next"]
        state["End"] = True
        found = asl.problems(rendered)
        assert {f"(top level){n}: unreachable from StartAt" for n in names[cut + 1 :]} <= set(found)
    else:
        del state["End"]
        assert f"(top level){names[cut]}: needs exactly one of Next or End" in asl.problems(
            rendered
        )


# ---------------------------------------------------------------- substitutions


def test_placeholders_and_substitute() -> None:
    definition = _small_machine().render()
    assert asl.placeholders(definition) == {"Topic"}
    filled = asl.substitute(definition, {"Topic": "arn:aws:sns:us-east-1:111122223333:t"})
    assert filled["States"]["Work"]["Branches"][0]["States"]["A"]["Parameters"]["TopicArn"] == (
        "arn:aws:sns:us-east-1:111122223333:t"
    )
    assert asl.placeholders(filled) == set()
    assert (
        definition["States"]["Work"]["Branches"][0]["States"]["A"]["Parameters"]["TopicArn"]
        == "${Topic}"
    )
    with pytest.raises(KeyError, match="Topic"):
        asl.substitute(definition, {})
