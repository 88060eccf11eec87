"""The run-time permission check (``permissions/runtime.py``) checks what it says it does.

``runtime_permissions.json`` lists per role the calls its service makes; a role exists for
the orchestrators, monitoring engines and deployment modes it names (all when it names
none), a need applies to the engines and modes it names and, with ``when``, only with
training.tuning or the named source provider. These tests hold the check to that reading
of the table, so that a check that silently skips a role or a need fails here rather than
passing everywhere.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import pytest

from mlops_templates import config
from mlops_templates.permissions import coverage, data, runtime, scenario

from . import variants

#: Placeholders only the deploy-prd stack fills in (``deployment.mode`` realtime or both).
PRODUCTION_ONLY = frozenset({
    "rollback_alarm_arn", "endpoint_arn", "deployment_group_arn", "api_version_arn",
    "api_alias_arn", "pre_hook_arn", "post_hook_arn", "prd_topic_arn", "monitor_machine_arn",
    "monitor_window_arn", "monitor_job_arn",
})
#: deployment.mode both: no variant file has it; the endpoints and the batch stack together.
BOTH = {"deployment": {"mode": "both"}}
NAMES = [*variants.names(), "mode-both"]


@cache
def deployment(name: str) -> scenario.ProjectDeployment:
    if name == "mode-both":
        return scenario.deploy(config.parse(BOTH))
    return scenario.deploy(config.load(variants.path(name)))


def present(d: scenario.ProjectDeployment, stack: str) -> bool:
    return stack == "pipeline" or (stack == "ci-oidc" and d.ci is not None) or stack in d.runs


def placeholder_names(need: dict[str, Any]) -> set[str]:
    texts = [need["resource"], *need["actions"], *(json.dumps(v) for v in need.get("context", {}).values())]
    return {name for text in texts for name in re.findall(r"\{([^{}\"]+)\}", text)}


def applies(need: dict[str, Any], d: scenario.ProjectDeployment) -> bool:
    cfg = d.config
    when = need.get("when")
    absent = {f"stack_arn:{s}" for s in ("deploy-dev", "deploy-prd") if s not in d.runs}
    if "deploy-prd" not in d.runs:
        absent |= PRODUCTION_ONLY
    if "batch" not in d.runs:
        absent.add("batch_machine_arn")
    return (
        cfg.monitoring.engine in need.get("engines", [cfg.monitoring.engine])
        and cfg.deployment.mode in need.get("modes", [cfg.deployment.mode])
        and (when is None or (cfg.training.tuning.enabled if when == "tuning"
                              else cfg.pipeline.source.provider == when))
        and not placeholder_names(need) & absent
    )


def recorded_checks(d: scenario.ProjectDeployment, monkeypatch: pytest.MonkeyPatch,
                    bounded: dict[str, int] | None = None) -> dict[str, int]:
    """Table role -> the number of calls ``runtime.missing`` evaluated for it; ``bounded``
    gets role -> how many of them were also evaluated on its permissions boundary."""
    roles = {}
    for name, spec in data.runtime().items():
        if present(d, spec.get("stack", "pipeline")):
            roles[(id(d.stack(spec.get("stack", "pipeline"))), spec["role"])] = name
    by_documents: dict[int, str] = {}
    kept: list[list[dict[str, Any]]] = []
    real_documents, real_decide = coverage.role_documents, runtime.decide

    def documents(stack: Any, logical_id: str) -> list[dict[str, Any]]:
        found = real_documents(stack, logical_id)
        by_documents[id(found)] = roles[(id(stack), logical_id)]
        kept.append(found)  # alive, so that no other list gets its id
        return found

    counts: dict[str, int] = {}
    last: list[str] = []

    def decide(docs: list[dict[str, Any]], request: runtime.Request) -> str:
        assert "{" not in request.action + request.resource, request
        if id(docs) not in by_documents:
            # The boundary of the role whose policies were just evaluated.
            if bounded is not None:
                bounded[last[-1]] = bounded.get(last[-1], 0) + 1
            return real_decide(docs, request)
        role = by_documents[id(docs)]
        last.append(role)
        counts[role] = counts.get(role, 0) + 1
        return real_decide(docs, request)

    monkeypatch.setattr(coverage, "role_documents", documents)
    monkeypatch.setattr(runtime, "decide", decide)
    assert runtime.missing(d) == []
    return counts


@pytest.mark.parametrize("name", NAMES)
def test_every_role_the_deployment_has_is_checked_with_every_need_that_applies(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment(name)
    expected = {}
    for role, spec in data.runtime().items():
        stack = spec.get("stack", "pipeline")
        if not present(d, stack) or spec["role"] not in d.stack(stack).resources:
            continue
        count = sum(len(need["actions"]) for need in spec["needs"] if applies(need, d))
        if count:
            expected[role] = count
    bounded: dict[str, int] = {}
    assert recorded_checks(d, monkeypatch, bounded) == expected
    # The roles the per-run stacks create are checked on their permissions boundary too,
    # every call; the pipeline stack's roles have none.
    run_roles = {role: count for role, count in expected.items()
                 if data.runtime()[role].get("stack", "pipeline") in ("deploy-prd", "batch")}
    assert bounded == run_roles


def test_the_deployments_cover_every_mode_engine_orchestrator_and_condition() -> None:
    seen = {(deployment(n).config.deployment.mode, deployment(n).config.monitoring.engine,
             deployment(n).config.pipeline.orchestrator) for n in NAMES}
    assert {mode for mode, _, _ in seen} == {"realtime", "batch", "both"}
    assert {engine for _, engine, _ in seen} == {"builtin", "model_monitor"}
    assert {orchestrator for _, _, orchestrator in seen} == {"codepipeline", "github", "gitlab"}
    assert any(deployment(n).config.training.tuning.enabled for n in NAMES)
    assert {deployment(n).config.pipeline.source.provider for n in NAMES} == {"codeconnections", "codecommit"}


@pytest.mark.parametrize("name", NAMES)
def test_placeholders_are_text(name: str) -> None:
    values = runtime.placeholders(deployment(name))
    assert all(isinstance(v, str) for v in values.values()), values
    assert values["run_id"] == scenario.RUN_ID and values["attempt"] == scenario.ATTEMPT


def test_what_a_deployment_lacks_fills_in_as_empty_text() -> None:
    """No CodePipeline with a CI orchestrator, no connection with CodeCommit, no builtin
    monitor with Model Monitor: their placeholders are empty."""
    github = runtime.placeholders(deployment("github-actions"))
    for key in ("pipeline_arn", "build_project_arn", "build_log_group_arn", "promote_project_arn",
                "train_output_project_arn", "connection_arn", "connection_service"):
        assert github[key] == "", key
    codecommit = runtime.placeholders(deployment("codecommit-schedule"))
    assert codecommit["connection_arn"] == codecommit["connection_service"] == ""
    assert codecommit["pipeline_arn"].startswith("arn:aws:codepipeline:")
    model_monitor = runtime.placeholders(deployment("model-monitor"))
    assert model_monitor["monitor_machine_arn"] == model_monitor["monitor_window_arn"] == ""
    example = runtime.placeholders(deployment(variants.EXAMPLE))
    assert example["connection_service"] == "codeconnections"
    assert example["monitor_machine_arn"].startswith("arn:aws:states:")
    assert runtime.placeholders(deployment("legacy-connection"))["connection_service"] == "codestar-connections"


def test_a_need_on_a_stack_the_mode_does_not_deploy_is_skipped_any_other_must_resolve() -> None:
    batch = deployment("batch")
    values = runtime.placeholders(batch)
    need = {"resource": "*", "actions": ["sagemaker:DescribeEndpoint"], "context": {}}
    assert runtime._on_absent_stack(need, values, batch) is False
    on_endpoint = {**need, "context": {"aws:SourceArn": "{endpoint_arn}"}}
    assert runtime._on_absent_stack(on_endpoint, values, batch) is True
    realtime = deployment(variants.EXAMPLE)
    typo = {**need, "resource": "{endpoint}", "actions": ["{service}:DescribeEndpoint"]}
    with pytest.raises(KeyError) as info:
        runtime._on_absent_stack(typo, runtime.placeholders(realtime), realtime)
    assert info.value.args == ("runtime_permissions.json: unknown placeholder(s) endpoint, service",)


def test_a_missing_call_is_reported_with_role_reason_resource_and_decision() -> None:
    d = scenario.deploy(config.load(variants.path(variants.EXAMPLE)))
    role = d.pipeline.resources["StatesRole"]
    original = copy.deepcopy(role.properties)
    for policy in role.properties["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            statement["Action"] = [a for a in statement["Action"] if a != "sagemaker:ListTags"]
    try:
        found = [m for m in runtime.missing(d) if m.action == "sagemaker:ListTags"]
    finally:
        role.properties = original
    needs = [n for n in data.runtime()["states"]["needs"] if "sagemaker:ListTags" in n["actions"]]
    assert found and {m.why for m in found} <= {n["why"] for n in needs}
    for m in found:
        assert (m.role, m.decision) == ("states", "ImplicitDeny")
        assert m.resource.startswith("arn:aws:sagemaker:") and "{" not in m.resource
        assert str(m) == f"states: sagemaker:ListTags on {m.resource} (ImplicitDeny; {m.why})"

