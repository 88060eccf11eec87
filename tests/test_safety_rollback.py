"""Safety: the production stack rolls back a bad release, checked with named assertions.

Every expected value is written here literally (or taken from the config under test), not
read from the builder's constants; resources are found by Type and by what they refer to,
never by the code's logical-ID constants. Each test also proves that it bites: it mutates
a scratch copy of the rendered template and checks that the same assertion then fails.

Sources for the literal values:

* SageMaker endpoint metrics (namespace ``AWS/SageMaker``, dimensions ``EndpointName``
  and ``VariantName``): ``Invocation5XXErrors`` is a count, read with ``Sum``;
  ``ModelLatency`` is "the interval of time taken by a model to respond ... Units:
  Microseconds" (SageMaker developer guide, "Monitor Amazon SageMaker AI with Amazon
  CloudWatch", endpoint invocation metrics).
* Deployment guardrails: ``TrafficRoutingConfig.Type`` is ``ALL_AT_ONCE``, ``CANARY`` or
  ``LINEAR``; ``CanarySize``/``LinearStepSize`` are a ``CapacitySize`` whose ``Type`` is
  ``INSTANCE_COUNT`` or ``CAPACITY_PERCENT`` (SageMaker API reference, TrafficRoutingConfig,
  CapacitySize).
* Lambda metrics: namespace ``AWS/Lambda``, ``Errors`` with dimensions ``FunctionName``,
  ``Resource`` (``function:alias``) and ``ExecutedVersion``; API Gateway REST metrics:
  namespace ``AWS/ApiGateway``, ``5XXError`` with dimensions ``ApiName`` and ``Stage``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mlops_templates import config, sam, stacks

REPO = Path(__file__).resolve().parent.parent
from . import variants

CONFIGS = variants.paths()
IDS = [str(p.relative_to(REPO)) for p in CONFIGS]


# ----------------------------------------------------------------------------- helpers


def _build(cfg: config.Config) -> dict[str, Any]:
    return json.loads(json.dumps(stacks.module("deploy-prd").build(cfg).to_dict()))


@cache
def _loaded(path: str) -> tuple[config.Config, str]:
    cfg = config.load(path)
    return cfg, json.dumps(_build(cfg))


def prd(path: Path) -> tuple[config.Config, dict[str, Any]]:
    """The config and a fresh (mutable) copy of its rendered deploy-prd template."""
    cfg, text = _loaded(str(path))
    return cfg, json.loads(text)


def of_type(t: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def only(t: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = of_type(t, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    [(logical_id, resource)] = found.items()
    return logical_id, resource["Properties"]


def referenced(t: dict[str, Any], ref: Any) -> dict[str, Any]:
    """The resource a ``{"Ref": ...}`` names, by the template's own reference."""
    assert isinstance(ref, dict) and set(ref) == {"Ref"}, ref
    return t["Resources"][ref["Ref"]]


def dims(alarm: dict[str, Any]) -> dict[str, Any]:
    names = [d["Name"] for d in alarm["Dimensions"]]
    assert len(names) == len(set(names)), names
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def getatt(value: Any) -> str | None:
    """``Fn::GetAtt`` in either form as one dotted string (``A.B.C``)."""
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return ".".join(target) if isinstance(target, list) else target
    return None


def killed(check: Callable[..., None], mutate: Callable[[dict[str, Any]], None],
           t: dict[str, Any], *args: Any) -> None:
    """``check`` passes on ``t`` but fails once ``mutate`` changed a scratch copy (a
    missing key fails the check as surely as a wrong value)."""
    check(t, *args)
    scratch = copy.deepcopy(t)
    mutate(scratch)
    with pytest.raises((AssertionError, LookupError)):
        check(scratch, *args)


def base(cfg: config.Config) -> str:
    return f"{cfg.project.prefix}-{cfg.project.name}"


# ------------------------------------------------------------- endpoint rollback alarms


def rollback_alarms(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The alarms of the endpoint's AutoRollbackConfiguration, keyed by metric name."""
    _, endpoint = only(t, "AWS::SageMaker::Endpoint")
    entries = endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    alarms = {}
    for entry in entries:
        # AutoRollbackConfiguration takes alarm *names*: Ref of an alarm is its name.
        resource = referenced(t, entry["AlarmName"])
        assert resource["Type"] == "AWS::CloudWatch::Alarm"
        props = resource["Properties"]
        alarms[props["MetricName"]] = props
    assert len(alarms) == len(entries)
    return alarms


def check_endpoint_dimensions(t: dict[str, Any], alarm: dict[str, Any], cfg: config.Config) -> None:
    _, endpoint = only(t, "AWS::SageMaker::Endpoint")
    _, endpoint_config = only(t, "AWS::SageMaker::EndpointConfig")
    [variant] = endpoint_config["ProductionVariants"]
    assert endpoint["EndpointName"] == f"{base(cfg)}-prd"
    assert variant["VariantName"] == "AllTraffic"
    assert alarm["Namespace"] == "AWS/SageMaker"
    assert dims(alarm) == {"EndpointName": f"{base(cfg)}-prd", "VariantName": "AllTraffic"}


def check_5xx_alarm(t: dict[str, Any], cfg: config.Config) -> None:
    alarms = rollback_alarms(t)
    assert "Invocation5XXErrors" in alarms, sorted(alarms)
    alarm = alarms["Invocation5XXErrors"]
    check_endpoint_dimensions(t, alarm, cfg)
    assert alarm["Statistic"] == "Sum"
    assert "ExtendedStatistic" not in alarm
    assert alarm["Period"] == 60
    assert alarm["EvaluationPeriods"] == 1
    assert alarm.get("DatapointsToAlarm", 1) == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["Threshold"] == cfg.endpoints.prd.max_5xx_errors


def check_latency_alarm(t: dict[str, Any], cfg: config.Config) -> None:
    alarms = rollback_alarms(t)
    assert "ModelLatency" in alarms, sorted(alarms)
    alarm = alarms["ModelLatency"]
    check_endpoint_dimensions(t, alarm, cfg)
    # ModelLatency is reported in microseconds: the config's milliseconds times 1000.
    assert alarm["Threshold"] == cfg.endpoints.prd.max_model_latency_ms * 1000
    assert alarm["Statistic"] == "Average"
    assert "ExtendedStatistic" not in alarm
    assert alarm["Period"] == 60
    assert alarm["EvaluationPeriods"] == 3
    assert alarm["DatapointsToAlarm"] == 2
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"


def _alarm(t: dict[str, Any], metric: str) -> dict[str, Any]:
    return rollback_alarms(t)[metric]


def _set(metric: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        _alarm(t, metric)[key] = value

    return mutate


def _set_dimension(metric: str, name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        for d in _alarm(t, metric)["Dimensions"]:
            if d["Name"] == name:
                d["Value"] = value

    return mutate


def _scale(metric: str, key: str, factor: float) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        _alarm(t, metric)[key] = _alarm(t, metric)[key] * factor

    return mutate


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_prd_endpoint_5xx_alarm_rolls_back_on_any_5xx_error_in_one_minute(path: Path) -> None:
    cfg, t = prd(path)
    check_5xx_alarm(t, cfg)
    m = "Invocation5XXErrors"
    for mutation in (
        _set(m, "Statistic", "Average"),
        _set(m, "Period", 300),
        _set(m, "EvaluationPeriods", 2),
        _set(m, "DatapointsToAlarm", 2),
        _set(m, "ComparisonOperator", "GreaterThanThreshold"),
        _set(m, "TreatMissingData", "breaching"),
        _set(m, "Threshold", cfg.endpoints.prd.max_5xx_errors + 1),
        _set(m, "Namespace", "AWS/Lambda"),
        _set_dimension(m, "VariantName", "Variant1"),
        _set_dimension(m, "EndpointName", f"{base(cfg)}-dev"),
    ):
        killed(check_5xx_alarm, mutation, t, cfg)

    def wrong_metric(t: dict[str, Any]) -> None:
        _alarm(t, m)["MetricName"] = "Invocation4XXErrors"

    killed(check_5xx_alarm, wrong_metric, t, cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_prd_endpoint_latency_alarm_threshold_is_in_microseconds(path: Path) -> None:
    cfg, t = prd(path)
    check_latency_alarm(t, cfg)
    m = "ModelLatency"
    for mutation in (
        _scale(m, "Threshold", 1 / 1000),  # milliseconds: 1000x too lenient
        _set(m, "Statistic", "Sum"),
        _set(m, "Statistic", "Maximum"),
        _set(m, "Period", 300),
        _set(m, "EvaluationPeriods", 1),
        _set(m, "DatapointsToAlarm", 3),
        _set(m, "ComparisonOperator", "LessThanThreshold"),
        _set(m, "TreatMissingData", "missing"),
        _set_dimension(m, "VariantName", "Variant1"),
    ):
        killed(check_latency_alarm, mutation, t, cfg)


@pytest.mark.parametrize(
    ("prd_settings", "max_5xx", "latency_threshold_us"),
    [
        ({"max_5xx_errors": 7, "max_model_latency_ms": 250}, 7, 250_000),
        ({"max_5xx_errors": 1, "max_model_latency_ms": 1}, 1, 1_000),
        ({"max_5xx_errors": 100000, "max_model_latency_ms": 600000}, 100000, 600_000_000),
    ],
)
def test_endpoint_alarm_thresholds_follow_the_config_in_the_metrics_units(
    prd_settings: dict[str, int], max_5xx: int, latency_threshold_us: int
) -> None:
    t = _build(config.parse({"endpoints": {"prd": prd_settings}}))
    alarms = rollback_alarms(t)
    assert alarms["Invocation5XXErrors"]["Threshold"] == max_5xx
    assert alarms["ModelLatency"]["Threshold"] == latency_threshold_us


def check_rollback_wiring(t: dict[str, Any]) -> None:
    # Exactly the 5XX and the latency alarm roll a blue/green deployment back.
    assert set(rollback_alarms(t)) == {"Invocation5XXErrors", "ModelLatency"}
    _, endpoint = only(t, "AWS::SageMaker::Endpoint")
    assert "BlueGreenUpdatePolicy" in endpoint["DeploymentConfig"]


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_both_endpoint_alarms_are_wired_into_auto_rollback(path: Path) -> None:
    _, t = prd(path)
    check_rollback_wiring(t)

    def endpoint_config(t: dict[str, Any]) -> dict[str, Any]:
        return only(t, "AWS::SageMaker::Endpoint")[1]["DeploymentConfig"]

    def drop_latency(t: dict[str, Any]) -> None:
        entries = endpoint_config(t)["AutoRollbackConfiguration"]["Alarms"]
        entries[:] = [
            e for e in entries
            if referenced(t, e["AlarmName"])["Properties"]["MetricName"] != "ModelLatency"
        ]

    def drop_5xx(t: dict[str, Any]) -> None:
        entries = endpoint_config(t)["AutoRollbackConfiguration"]["Alarms"]
        entries[:] = [
            e for e in entries
            if referenced(t, e["AlarmName"])["Properties"]["MetricName"] != "Invocation5XXErrors"
        ]

    def drop_rollback(t: dict[str, Any]) -> None:
        del endpoint_config(t)["AutoRollbackConfiguration"]

    for mutation in (drop_latency, drop_5xx, drop_rollback):
        killed(check_rollback_wiring, mutation, t)


# ------------------------------------------------------------- guardrail traffic routing

#: The config's deployment type -> SageMaker's TrafficRoutingConfig.Type and the key of
#: its step size (written out from the API reference, not taken from the builder).
ROUTING_TYPES = {
    "canary": ("CANARY", "CanarySize"),
    "linear": ("LINEAR", "LinearStepSize"),
    "all_at_once": ("ALL_AT_ONCE", None),
}


def expected_update_policy(cfg: config.Config) -> dict[str, Any]:
    policy = cfg.endpoints.prd.deployment
    kind, size_key = ROUTING_TYPES[policy.type]
    routing: dict[str, Any] = {"Type": kind, "WaitIntervalInSeconds": policy.wait_interval_seconds}
    if size_key:
        routing[size_key] = {"Type": "CAPACITY_PERCENT", "Value": policy.traffic_percent}
    return {
        "TrafficRoutingConfiguration": routing,
        "TerminationWaitInSeconds": policy.termination_wait_seconds,
        "MaximumExecutionTimeoutInSeconds": policy.maximum_execution_timeout_seconds,
    }


def update_policy(t: dict[str, Any]) -> dict[str, Any]:
    return only(t, "AWS::SageMaker::Endpoint")[1]["DeploymentConfig"]["BlueGreenUpdatePolicy"]


def check_policy_equals(t: dict[str, Any], expected: dict[str, Any]) -> None:
    assert update_policy(t) == expected


def _routing_mutations(t: dict[str, Any]) -> list[Callable[[dict[str, Any]], None]]:
    routing_type = update_policy(t)["TrafficRoutingConfiguration"]["Type"]

    def other_type(t: dict[str, Any]) -> None:
        routing = update_policy(t)["TrafficRoutingConfiguration"]
        routing["Type"] = "LINEAR" if routing["Type"] != "LINEAR" else "CANARY"

    def wait_off_by_one(t: dict[str, Any]) -> None:
        update_policy(t)["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"] += 1

    def termination_off_by_one(t: dict[str, Any]) -> None:
        update_policy(t)["TerminationWaitInSeconds"] += 1

    def no_timeout(t: dict[str, Any]) -> None:
        del update_policy(t)["MaximumExecutionTimeoutInSeconds"]

    mutations = [other_type, wait_off_by_one, termination_off_by_one, no_timeout]
    if routing_type in ("CANARY", "LINEAR"):
        size_key = "CanarySize" if routing_type == "CANARY" else "LinearStepSize"

        def instance_count(t: dict[str, Any]) -> None:
            update_policy(t)["TrafficRoutingConfiguration"][size_key]["Type"] = "INSTANCE_COUNT"

        def size_plus_one(t: dict[str, Any]) -> None:
            update_policy(t)["TrafficRoutingConfiguration"][size_key]["Value"] += 1

        def wrong_size_key(t: dict[str, Any]) -> None:
            routing = update_policy(t)["TrafficRoutingConfiguration"]
            other = "LinearStepSize" if size_key == "CanarySize" else "CanarySize"
            routing[other] = routing.pop(size_key)

        mutations += [instance_count, size_plus_one, wrong_size_key]
    return mutations


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_guardrail_traffic_routing_matches_each_config_file(path: Path) -> None:
    cfg, t = prd(path)
    expected = expected_update_policy(cfg)
    check_policy_equals(t, expected)
    for mutation in _routing_mutations(t):
        killed(check_policy_equals, mutation, t, expected)


@pytest.mark.parametrize(
    ("deployment", "prd_extra", "expected"),
    [
        pytest.param(
            {"type": "canary", "traffic_percent": 5, "wait_interval_seconds": 600,
             "termination_wait_seconds": 0, "maximum_execution_timeout_seconds": 7200},
            {},
            {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 5},
                    "WaitIntervalInSeconds": 600,
                },
                "TerminationWaitInSeconds": 0,
                "MaximumExecutionTimeoutInSeconds": 7200,
            },
            id="canary",
        ),
        pytest.param(
            {"type": "linear", "traffic_percent": 25, "wait_interval_seconds": 60,
             "termination_wait_seconds": 3600, "maximum_execution_timeout_seconds": 600},
            {},
            {
                "TrafficRoutingConfiguration": {
                    "Type": "LINEAR",
                    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                    "WaitIntervalInSeconds": 60,
                },
                "TerminationWaitInSeconds": 3600,
                "MaximumExecutionTimeoutInSeconds": 600,
            },
            id="linear",
        ),
        pytest.param(
            {"type": "all_at_once", "wait_interval_seconds": 0,
             "termination_wait_seconds": 30, "maximum_execution_timeout_seconds": 14400},
            {"instance_count": 1, "autoscaling": {"min_capacity": 1, "max_capacity": 2}},
            {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": 30,
                "MaximumExecutionTimeoutInSeconds": 14400,
            },
            id="all-at-once",
        ),
    ],
)
def test_guardrail_traffic_routing_per_deployment_type(
    deployment: dict[str, Any], prd_extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    t = _build(config.parse({"endpoints": {"prd": {"deployment": deployment, **prd_extra}}}))
    check_policy_equals(t, expected)
    for mutation in _routing_mutations(t):
        killed(check_policy_equals, mutation, t, expected)


# ------------------------------------------------------- API CodeDeploy rollback alarms


def api_function(t: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The function CodeDeploy shifts gradually: the one with a DeploymentPreference."""
    found = [
        (k, v["Properties"]) for k, v in of_type(t, "AWS::Serverless::Function").items()
        if "DeploymentPreference" in v["Properties"]
    ]
    assert len(found) == 1, [k for k, _ in found]
    return found[0]


def check_api_rollback_alarms(t: dict[str, Any], cfg: config.Config) -> None:
    function_id, function = api_function(t)
    name = function["FunctionName"]
    alias = function["AutoPublishAlias"]
    assert name == f"{base(cfg)}-api"
    assert alias == "live"
    _, api = only(t, "AWS::Serverless::Api")
    # The function is the API's integration (an Api event on that API).
    assert any(
        e["Type"] == "Api" and e["Properties"]["RestApiId"] == {"Ref": only(t, "AWS::Serverless::Api")[0]}
        for e in function["Events"].values()
    )
    assert api["Name"] == f"{base(cfg)}-api"
    assert api["StageName"] == cfg.api.stage_name

    refs = function["DeploymentPreference"]["Alarms"]
    alarms = [referenced(t, ref) for ref in refs]
    assert all(a["Type"] == "AWS::CloudWatch::Alarm" for a in alarms)
    found = {}
    for alarm in (a["Properties"] for a in alarms):
        d = dims(alarm)
        if "ExecutedVersion" in d:
            key = "new-version"
            assert getatt(d.pop("ExecutedVersion")) == f"{function_id}.Version.Version"
        elif alarm["Namespace"] == "AWS/Lambda":
            key = "alias"
        else:
            key = "stage"
        found[key] = (alarm, d)
        assert alarm["Statistic"] == "Sum"
        assert "ExtendedStatistic" not in alarm
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["Period"] == 60
        assert alarm["EvaluationPeriods"] == 1
        assert alarm.get("DatapointsToAlarm", 1) == 1
        assert alarm["TreatMissingData"] == "notBreaching"
    assert sorted(found) == ["alias", "new-version", "stage"]
    assert len(refs) == 3
    for key in ("alias", "new-version"):
        alarm, d = found[key]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
        assert d == {"FunctionName": name, "Resource": f"{name}:{alias}"}
    alarm, d = found["stage"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    assert d == {"ApiName": api["Name"], "Stage": cfg.api.stage_name}


def _api_alarm(t: dict[str, Any], metric: str, versioned: bool) -> dict[str, Any]:
    for ref in api_function(t)[1]["DeploymentPreference"]["Alarms"]:
        props = referenced(t, ref)["Properties"]
        has_version = any(d["Name"] == "ExecutedVersion" for d in props["Dimensions"])
        if props["MetricName"] == metric and has_version == versioned:
            return props
    raise KeyError(metric)


def _api_set(metric: str, versioned: bool, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        _api_alarm(t, metric, versioned)[key] = value

    return mutate


def _api_drop(metric: str, versioned: bool) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        preference = api_function(t)[1]["DeploymentPreference"]
        preference["Alarms"] = [
            ref for ref in preference["Alarms"]
            if referenced(t, ref)["Properties"] is not _api_alarm(t, metric, versioned)
        ]

    return mutate


def _api_dimension(metric: str, versioned: bool, name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(t: dict[str, Any]) -> None:
        for d in _api_alarm(t, metric, versioned)["Dimensions"]:
            if d["Name"] == name:
                d["Value"] = value

    return mutate


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_api_codedeploy_rollback_alarms_watch_alias_new_version_and_stage(path: Path) -> None:
    cfg, t = prd(path)
    check_api_rollback_alarms(t, cfg)
    mutations = [
        _api_drop("Errors", False),
        _api_drop("Errors", True),
        _api_drop("5XXError", False),
        _api_set("Errors", False, "Statistic", "Average"),
        _api_set("Errors", True, "Threshold", 2),
        _api_set("5XXError", False, "Period", 300),
        _api_set("5XXError", False, "ComparisonOperator", "GreaterThanThreshold"),
        _api_set("5XXError", False, "TreatMissingData", "breaching"),
        _api_set("Errors", True, "EvaluationPeriods", 5),
        _api_set("5XXError", False, "MetricName", "4XXError"),
        _api_dimension("Errors", False, "Resource", f"{base(cfg)}-api"),  # not the alias
        _api_dimension("Errors", True, "ExecutedVersion", "1"),  # a fixed old version
        _api_dimension("5XXError", False, "Stage", "test"),
    ]
    for mutation in mutations:
        killed(check_api_rollback_alarms, mutation, t, cfg)


def check_expanded_deployment_group(expanded: dict[str, Any], t: dict[str, Any]) -> None:
    """After the SAM transform, CodeDeploy's group stops and rolls back on the three alarms."""
    function_id, function = api_function(t)
    wanted = [ref["Ref"] for ref in function["DeploymentPreference"]["Alarms"]]
    _, group = only(expanded, "AWS::CodeDeploy::DeploymentGroup")
    alarm_config = group["AlarmConfiguration"]
    assert alarm_config["Enabled"] is True
    assert [a["Name"] for a in alarm_config["Alarms"]] == [{"Ref": r} for r in wanted]
    rollback = group["AutoRollbackConfiguration"]
    assert rollback["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in rollback["Events"]
    assert "DEPLOYMENT_FAILURE" in rollback["Events"]
    # The new-version alarm watches the Lambda version this deployment publishes.
    versions = of_type(expanded, "AWS::Lambda::Version")
    for ref in wanted:
        for d in expanded["Resources"][ref]["Properties"]["Dimensions"]:
            if d["Name"] == "ExecutedVersion":
                target = getatt(d["Value"])
                assert target is not None
                version_id, attribute = target.split(".", 1)
                assert attribute == "Version"
                assert versions[version_id]["Properties"]["FunctionName"] == {"Ref": function_id}
    # The 5XXError dimensions name the API and the stage that really exist.
    _, rest_api = only(expanded, "AWS::ApiGateway::RestApi")
    _, stage = only(expanded, "AWS::ApiGateway::Stage")
    for ref in wanted:
        d = dims(expanded["Resources"][ref]["Properties"])
        if "ApiName" in d:
            assert d == {"ApiName": rest_api["Name"], "Stage": stage["StageName"]}


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_sam_expansion_wires_the_api_rollback_alarms_into_the_codedeploy_group(path: Path) -> None:
    cfg, t = prd(path)
    expanded = sam.expand(t, cfg.project.region)
    check_expanded_deployment_group(expanded, t)

    def group(e: dict[str, Any]) -> dict[str, Any]:
        return only(e, "AWS::CodeDeploy::DeploymentGroup")[1]

    def disable_alarms(e: dict[str, Any]) -> None:
        group(e)["AlarmConfiguration"]["Enabled"] = False

    def drop_one_alarm(e: dict[str, Any]) -> None:
        group(e)["AlarmConfiguration"]["Alarms"].pop()

    def no_rollback_on_alarm(e: dict[str, Any]) -> None:
        group(e)["AutoRollbackConfiguration"]["Events"] = ["DEPLOYMENT_FAILURE"]

    def rename_stage(e: dict[str, Any]) -> None:
        only(e, "AWS::ApiGateway::Stage")[1]["StageName"] = "other"

    for mutation in (disable_alarms, drop_one_alarm, no_rollback_on_alarm, rename_stage):
        scratch = copy.deepcopy(expanded)
        mutation(scratch)
        with pytest.raises((AssertionError, LookupError)):
            check_expanded_deployment_group(scratch, t)
