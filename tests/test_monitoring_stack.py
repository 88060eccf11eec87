"""The production stack's monitoring with the builtin engine, in every config variant: the
schedule starts the monitor state machine, the state machine runs the monitor job and
publishes its metrics, the drift and quality alarms watch them and start retraining, the
notices word every event, the dashboard shows it all; Model Monitor where configured.

The monitor state machine's real definition also runs in moto's Step Functions interpreter
(as tests/test_workflow_sfn.py does for the training workflow): the window function's real
output (computed by its handler against moto's S3), ``s3:getObject`` of ``metrics.json``,
``cloudwatch:putMetricData`` into moto's CloudWatch, ``sns:publish`` of the failure notice
and the failure status. What moto cannot run is replaced, wired exactly like the original:
the Lambda invoke (moto runs functions in Docker) by a Pass with the handler's output, and
the ``.sync`` processing job by an ``s3:putObject`` of the ``metrics.json`` the container
job wrote for a prepared window (or, to fail, a ``getObject`` of a missing key).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from mlops_templates import asl, config, contract, naming, notifications
from mlops_templates.stacks import deploy_prd, pipeline
from mlops_templates.stacks.deploy_prd import alarms, monitor_definition
from mlops_templates.stacks.deploy_prd import names as n

from . import sfn_patches
from .conftest import FAKE_CREDENTIALS, REPO
from .lambda_helpers import FakeContext, load_lambda
from .variants import names as variant_names
from .variants import variant_config

VARIANTS = variant_names()


def build(cfg: config.Config) -> dict[str, Any]:
    return json.loads(json.dumps(deploy_prd.build(cfg).to_dict()))


@pytest.fixture(scope="module", params=VARIANTS)
def case(request: pytest.FixtureRequest) -> tuple[config.Config, dict[str, Any]]:
    cfg = variant_config(request.param)
    return cfg, build(cfg)


def props(t: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return t["Resources"][logical_id]["Properties"]


def of_type(t: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in t["Resources"].items() if v["Type"] == kind}


def builtin(cfg: config.Config) -> bool:
    return cfg.monitoring.engine == "builtin"


# ------------------------------------------------------------------ schedule -> machine


def test_the_schedule_starts_the_monitor_state_machine(case) -> None:
    cfg, t = case
    if not builtin(cfg):
        assert not of_type(t, "AWS::Scheduler::Schedule") and not of_type(t, "AWS::StepFunctions::StateMachine")
        assert of_type(t, "AWS::SageMaker::MonitoringSchedule")
        return
    schedule = props(t, n.MONITOR_SCHEDULE)
    assert schedule["ScheduleExpression"] == cfg.monitoring.schedule_expression
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Name"] == f"{naming.base(cfg)}-prd-monitor-schedule"
    target = schedule["Target"]
    assert target["Arn"] == {"Ref": n.MONITOR_STATE_MACHINE}  # a templated StartExecution target
    assert target["RoleArn"] == {"Fn::GetAtt": [n.MONITOR_SCHEDULER_ROLE, "Arn"]}
    assert json.loads(target["Input"]) == {"ScheduledTime": "<aws.scheduler.scheduled-time>"}
    role = props(t, n.MONITOR_SCHEDULER_ROLE)
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["scheduler.amazonaws.com"]}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (["states:StartExecution"], [{"Ref": n.MONITOR_STATE_MACHINE}]),
        (["kms:Decrypt"], [{"Ref": "KmsKeyArn"}]),
    ]


def test_the_state_machine_runs_the_definition_with_its_substitutions(case) -> None:
    cfg, t = case
    if not builtin(cfg):
        return
    machine = props(t, n.MONITOR_STATE_MACHINE)
    assert machine["Definition"] == monitor_definition.definition(cfg)
    assert set(machine["DefinitionSubstitutions"]) == asl.placeholders(machine["Definition"])
    assert machine["DefinitionSubstitutions"]["ImageUri"] == {"Ref": "ImageUri"}  # the project image
    assert machine["DefinitionSubstitutions"]["SageMakerRoleArn"] == {"Ref": "ExecutionRoleArn"}
    assert machine["StateMachineName"] == f"{naming.base(cfg)}-prd-monitor"
    assert machine["LoggingConfiguration"]["Level"] == "ALL" and machine["TracingConfiguration"]["Enabled"]
    assert asl.problems(machine["Definition"]) == []


def test_every_task_is_caught_and_the_job_is_isolated(case) -> None:
    cfg, _ = case
    if not builtin(cfg):
        return
    definition = monitor_definition.definition(cfg)
    states = dict(asl.all_states(definition))
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        assert [c["ErrorEquals"] for c in state["Catch"]] == [["States.ALL"]], name
        target = state["Catch"][0]["Next"]
        if name in monitor_definition.STEP_ERRORS:
            assert states[target]["Parameters"]["Error"] == monitor_definition.STEP_ERRORS[name]
            assert states[target]["Next"] == monitor_definition.NOTIFY_FAILURE
    job = states[monitor_definition.MONITOR]["Parameters"]
    assert job["AppSpecification"] == {"ImageUri": "${ImageUri}", "ContainerEntrypoint": ["monitor"]}
    assert job["NetworkConfig"]["EnableNetworkIsolation"] is True  # no AWS API from the job
    assert ("VpcConfig" in job["NetworkConfig"]) == bool(cfg.network.subnet_ids)
    assert job["ProcessingInputs.$"] == "$.Window.Inputs"
    assert job["ProcessingOutputConfig"]["KmsKeyId"] == "${KmsKeyArn}"
    environment = {k: v for k, v in job["Environment"].items() if not k.endswith(".$")}
    assert environment == monitor_definition.job_environment(cfg, f"{naming.base(cfg)}-prd")
    assert environment["DRIFT_FEATURES"].split(",") == cfg.monitoring.drift_features
    assert job["Environment"]["WINDOW_START.$"] == "$.Window.Start"
    # The longest name the job can get fits SageMaker's 63 characters.
    longest = naming.monitor_job_name_format(cfg).format("2" * 12, "a" * 8, "9" * 4)
    assert len(longest) <= naming.LIMITS["sagemaker"]
    publish = states[monitor_definition.PUBLISH_METRICS]
    assert publish["Resource"] == "arn:aws:states:::aws-sdk:cloudwatch:putMetricData"
    assert publish["Parameters"] == {"Namespace.$": "$.Metrics.Request.Namespace",
                                     "MetricData.$": "$.Metrics.Request.MetricData"}


# ------------------------------------------------------------------------------ alarms


def test_the_alarms_watch_the_monitor_metrics_and_have_no_raw_actions(case) -> None:
    cfg, t = case
    for logical_id, alarm in of_type(t, "AWS::CloudWatch::Alarm").items():
        assert not {"AlarmActions", "OKActions", "InsufficientDataActions"} & set(alarm), logical_id
    if not builtin(cfg):
        assert n.QUALITY_ALARM not in t["Resources"]
        return
    mon = cfg.monitoring
    schedule = alarms.SCHEDULES[mon.schedule_expression]
    endpoint = [{"Name": "EndpointName", "Value": f"{naming.base(cfg)}-prd"}]
    drift = props(t, n.DRIFT_ALARM)
    assert (drift["Namespace"], drift["MetricName"], drift["Dimensions"]) == (
        naming.metrics_namespace(cfg), "FeaturesDrifted", endpoint)
    assert drift["Threshold"] == mon.drift_violations_threshold
    assert drift["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (drift["Period"], drift["EvaluationPeriods"], drift["DatapointsToAlarm"]) == (
        schedule.period, schedule.evaluation_periods, schedule.datapoints)
    assert drift["Period"] * drift["EvaluationPeriods"] <= 86400  # CloudWatch's limit
    quality = props(t, n.QUALITY_ALARM)
    assert quality["AlarmName"] == f"{naming.base(cfg)}-prd-quality"
    assert quality["MetricName"] == contract.QUALITY_METRIC_NAMES[mon.quality.metric]
    assert quality["Threshold"] == mon.quality.threshold
    assert quality["ComparisonOperator"] == alarms.COMPARISONS[mon.quality.operator]
    for alarm in (drift, quality):
        assert alarm["TreatMissingData"] == "notBreaching"  # an empty window is not a breach


def test_the_retraining_rule_matches_the_alarms_by_name(case) -> None:
    """The pipeline stack (one per Studio project) names the alarms the deploy-prd stack of
    that project creates: with the project's name substituted, they are the same."""
    cfg, t = case
    pipe = json.loads(pipeline.build(cfg).to_json())
    if not cfg.deployment.realtime:  # no deploy-prd stack: tests/test_batch.py checks the batch alarms
        return
    if cfg.pipeline.orchestrator != "codepipeline" or not cfg.pipeline.retrain_on:
        assert pipeline.DRIFT_RULE not in pipe["Resources"]
        return
    rule = pipe["Resources"][pipeline.DRIFT_RULE]["Properties"]
    patterns = [r["Fn::Sub"].replace("${SageMakerProjectName}", cfg.project.name).rsplit(":alarm:", 1)[1]
                for r in rule["EventPattern"]["resources"]]
    by_kind = {"drift": props(t, n.DRIFT_ALARM)["AlarmName"]}
    if n.QUALITY_ALARM in t["Resources"]:
        by_kind["quality"] = props(t, n.QUALITY_ALARM)["AlarmName"]
    for kind, name in by_kind.items():
        assert (name in patterns) is (kind in cfg.pipeline.retrain_on), (kind, name, patterns)
    assert rule["EventPattern"]["detail"] == {"state": {"value": ["ALARM"]}}


# ----------------------------------------------------------------------------- notices


def test_every_notice_is_one_readable_message_the_topic_accepts(case) -> None:
    cfg, t = case
    rules = of_type(t, "AWS::Events::Rule")
    expected = {n.DRIFT_NOTICE, n.ROLLBACK_NOTICE, n.API_DEPLOYMENT_NOTICE}
    if builtin(cfg):
        expected.add(n.QUALITY_NOTICE)
    assert set(rules) == expected
    policy = props(t, n.NOTIFICATION_TOPIC_POLICY)["PolicyDocument"]["Statement"]
    [statement] = policy
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == ["sns:Publish"]
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert sorted(s["Fn::GetAtt"][0] for s in sources) == sorted(expected)
    for logical_id, rule in rules.items():
        [target] = rule["Targets"]
        assert target["Arn"] == {"Ref": n.NOTIFICATION_TOPIC} and "RoleArn" not in target
        transformer = target["InputTransformer"]
        message = json.loads(transformer["InputTemplate"])  # a JSON string: the whole message
        assert isinstance(message, str) and "{" not in message
        assert set(re.findall(r"<([a-z_]+)>", message)) == set(transformer["InputPathsMap"]), logical_id
        assert all(path.startswith("$.") for path in transformer["InputPathsMap"].values())
    rollback = rules[n.ROLLBACK_NOTICE]["EventPattern"]["resources"]
    assert {r["Fn::GetAtt"][0] for r in rollback} == {
        n.ENDPOINT_5XX_ALARM, n.ENDPOINT_LATENCY_ALARM, n.ALIAS_ERRORS_ALARM, n.NEW_VERSION_ERRORS_ALARM,
        n.API_5XX_ALARM}


def test_configured_messages_replace_the_defaults(case) -> None:
    cfg, t = case
    text = cfg.notifications.messages.get("drift")
    message = json.loads(props(t, n.DRIFT_NOTICE)["Targets"][0]["InputTransformer"]["InputTemplate"])
    if text is None:
        assert message.startswith("Data drift on ")
    else:
        assert message == text.replace("{alarm}", "<alarm>").replace("{reason}", "<reason>").replace(
            "{endpoint}", f"{naming.base(cfg)}-prd")


# --------------------------------------------------------------------------- dashboard


def test_the_dashboard_shows_traffic_errors_latency_drift_quality_and_status(case) -> None:
    cfg, t = case
    body = props(t, n.DASHBOARD)["DashboardBody"]["Fn::Sub"]
    assert props(t, n.DASHBOARD)["DashboardName"] == f"{naming.base(cfg)}-prd-dashboard"
    resolved = body.replace("${AWS::Region}", "us-east-1")
    alarm_refs = set(re.findall(r"\$\{([A-Za-z0-9]+)\.Arn\}", resolved))
    assert alarm_refs <= set(t["Resources"])
    widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9]+\.Arn\}", "arn", resolved))["widgets"]
    metrics = {m[1] for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]}
    assert {"Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency"} <= metrics
    if builtin(cfg):
        assert {"FeatureDrift", "RMSE", "MAE", "R2", "JoinedRows", "MonitorFailed", "Rows"} <= metrics
        assert alarm_refs == {n.DRIFT_ALARM, n.QUALITY_ALARM}
        drift = next(w for w in widgets if "Drift" in w["properties"]["title"])
        features = {m[5] for m in drift["properties"]["metrics"] if m[1] == "FeatureDrift"}
        assert features == set(cfg.monitoring.drift_features)
    else:
        assert {f"feature_baseline_drift_{f}" for f in cfg.monitoring.drift_features} <= metrics
        assert alarm_refs == {n.DRIFT_ALARM}


# ------------------------------------------------------------- properties over configs


@settings(max_examples=20, deadline=None)
@given(
    schedule=st.sampled_from(sorted(alarms.SCHEDULES)),
    operator=st.sampled_from([">", ">=", "<", "<="]),
    metric=st.sampled_from(["rmse", "mae", "r2"]),
    threshold=st.floats(min_value=0.01, max_value=100, allow_nan=False),
    retrain_on=st.lists(st.sampled_from(["drift", "quality"]), unique=True),
    engine=st.sampled_from(["builtin", "model_monitor"]),
)
def test_alarms_and_retraining_follow_any_config(schedule: str, operator: str, metric: str, threshold: float,
                                                  retrain_on: list[str], engine: str) -> None:
    cfg = config.parse({"monitoring": {"engine": engine, "schedule_expression": schedule,
                                       "quality": {"metric": metric, "operator": operator, "threshold": threshold}},
                        "pipeline": {"retrain_on": retrain_on}})
    t = build(cfg)
    assert set(of_type(t, "AWS::Scheduler::Schedule")) == ({n.MONITOR_SCHEDULE} if engine == "builtin" else set())
    if engine == "builtin":
        quality = props(t, n.QUALITY_ALARM)
        assert quality["Threshold"] == threshold and quality["ComparisonOperator"] == alarms.COMPARISONS[operator]
        assert props(t, n.MONITOR_SCHEDULE)["ScheduleExpression"] == schedule
        rule = json.loads(props(t, n.QUALITY_NOTICE)["Targets"][0]["InputTransformer"]["InputTemplate"])
        assert "<" not in rule.replace("<alarm>", "").replace("<reason>", "").replace("<time>", "")
    for alarm in of_type(t, "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm
    # The retraining rule matches exactly the configured alarms this engine has.
    expected = [kind for kind in retrain_on if engine == "builtin" or kind == "drift"]
    pipe = json.loads(pipeline.build(cfg).to_json())
    rule = pipe["Resources"].get(pipeline.DRIFT_RULE)
    assert (rule is not None) is bool(expected)
    if rule:
        matched = [r["Fn::Sub"].rsplit(":alarm:", 1)[1] for r in rule["Properties"]["EventPattern"]["resources"]]
        assert [name.rsplit("-", 1)[1] for name in matched] == expected
        existing = {a.get("AlarmName") for a in of_type(t, "AWS::CloudWatch::Alarm").values()}
        assert {m.replace("${SageMakerProjectName}", cfg.project.name) for m in matched} <= existing


# ------------------------------------------------------------- the machine in moto


REGION, ACCOUNT = "us-east-1", "123456789012"
BUCKET = "mlops-abalone-art"
ENDPOINT = "mlops-abalone-prd"


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(key, value)
        sfn_patches.s3_body_as_text(monkeypatch)
        sfn_patches.redrive_count(monkeypatch, {"RedriveCount": 0})
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            clients = {name: boto3.client(name, region_name=REGION)
                       for name in ("s3", "sns", "sqs", "stepfunctions", "cloudwatch")}
            clients["s3"].create_bucket(Bucket=BUCKET)
            topic = clients["sns"].create_topic(Name=f"{ENDPOINT}-notifications")["TopicArn"]
            queue = clients["sqs"].create_queue(QueueName="notices")["QueueUrl"]
            arn = clients["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            clients["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            for key, value in {
                "CAPTURE_URI": f"s3://{BUCKET}/data-capture", "ENDPOINT_NAME": ENDPOINT,
                "VARIANT_NAME": "AllTraffic", "GROUND_TRUTH_URI": f"s3://{BUCKET}/ground-truth",
                "MONITORING_URI": f"s3://{BUCKET}/monitoring", "PERIOD_SECONDS": "3600", "LOOKBACK_HOURS": "24",
                "STATISTICS_URI": f"s3://{BUCKET}/runs/r/a/baseline/statistics.json",
                "CONSTRAINTS_URI": f"s3://{BUCKET}/runs/r/a/baseline/constraints.json",
            }.items():
                monkeypatch.setenv(key, value)
            yield {"clients": clients, "topic": topic, "queue": queue, "window": load_lambda("monitor_window")}


#: A metrics.json as the container job writes it (tests/test_monitor_job.py checks the job).
METRICS = {
    "Namespace": "mlops/abalone",
    "MetricData": [
        {"MetricName": "FeaturesDrifted", "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}],
         "Value": 2.0, "Unit": "Count"},
        {"MetricName": "FeatureDrift", "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT},
                                                      {"Name": "Feature", "Value": "length"}],
         "Value": 0.31, "Unit": "None"},
        {"MetricName": "RMSE", "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}],
         "Value": 3.4, "Unit": "None"},
        {"MetricName": "MonitorFailed", "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}],
         "Value": 0.0, "Unit": "Count"},
    ],
}


def machine_definition(window: dict[str, Any], failing: bool) -> dict[str, Any]:
    """The real definition, its Lambda call and job stubbed as the module docstring says."""
    cfg = config.parse({})
    definition = copy.deepcopy(asl.substitute(monitor_definition.definition(cfg), {
        "WindowFunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ENDPOINT}-monitor-window",
        "ImageUri": "image", "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/r",
        "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k", "NotificationTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{ENDPOINT}-notifications",
    }))
    states = definition["States"]
    find = states[monitor_definition.FIND_WINDOW]
    states[monitor_definition.FIND_WINDOW] = {
        "Type": "Pass", "Result": window, "ResultPath": find["ResultPath"], "Next": find["Next"]}
    del states[f"{monitor_definition.FIND_WINDOW}Error"]  # a Pass fails no more
    states[monitor_definition.WAIT_FOR_CAPTURE]["Seconds"] = 0
    job = states[monitor_definition.MONITOR]
    if failing:
        stub = {"Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                "Parameters": {"Bucket": BUCKET, "Key": "no/such/key"}}
    else:
        stub = {"Resource": "arn:aws:states:::aws-sdk:s3:putObject",
                "Parameters": {"Bucket.$": "$.Window.ReportBucket", "Key.$": "$.Window.MetricsKey",
                               "Body": json.dumps(METRICS), "Metadata": {"job.$": job["Parameters"]["ProcessingJobName.$"]}}}
    states[monitor_definition.MONITOR] = {"Type": "Task", **stub,
                                          **{k: job[k] for k in ("ResultPath", "Catch", "Next")}}
    assert asl.problems(definition) == []
    return definition


def execute(aws: dict[str, Any], definition: dict[str, Any], execution_input: dict[str, Any]) -> dict[str, Any]:
    return sfn_patches.execute(aws, definition, execution_input, "monitor")


notices = sfn_patches.notices


def published(aws: dict[str, Any], name: str, statistic: str = "Maximum") -> list[float]:
    stats = aws["clients"]["cloudwatch"].get_metric_statistics(
        Namespace="mlops/abalone", MetricName=name, Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}],
        StartTime=time.time() - 3600, EndTime=time.time() + 3600, Period=60, Statistics=[statistic])
    return [p[statistic] for p in stats["Datapoints"]]


def test_a_monitoring_run_publishes_the_job_metrics(aws: dict[str, Any]) -> None:
    s3 = aws["clients"]["s3"]
    s3.put_object(Bucket=BUCKET, Key="data-capture/mlops-abalone-prd/AllTraffic/2024/05/01/09/a.jsonl", Body=b"{}\n")
    window = aws["window"].handler({"Input": {"ScheduledTime": "2024-05-01T10:00:00Z"}}, FakeContext())
    run = execute(aws, machine_definition(window, failing=False), {"ScheduledTime": "2024-05-01T10:00:00Z"})
    assert run["status"] == "SUCCEEDED", run
    entered = [e["stateEnteredEventDetails"]["name"] for e in run["history"] if "stateEnteredEventDetails" in e]
    assert entered[:3] == ["Start", "WaitForCapture", "FindWindow"]  # a scheduled run waits
    assert entered[-3:] == ["ReadMetrics", "PublishMetrics", "Succeeded"]
    head = s3.head_object(Bucket=BUCKET, Key=window["MetricsKey"])
    assert re.fullmatch(r"mlops-abalone-mon-202405011000-[0-9a-f]{8}-0", head["Metadata"]["job"])
    assert set(published(aws, "FeaturesDrifted")) == {2.0} and set(published(aws, "RMSE")) == {3.4}
    assert notices(aws) == []


def test_a_run_for_a_given_window_does_not_wait(aws: dict[str, Any]) -> None:
    window = aws["window"].handler({"Input": {"WindowEnd": "2024-05-01T08:00:00Z"}}, FakeContext())
    run = execute(aws, machine_definition(window, failing=False), {"WindowEnd": "2024-05-01T08:00:00Z"})
    entered = [e["stateEnteredEventDetails"]["name"] for e in run["history"] if "stateEnteredEventDetails" in e]
    assert run["status"] == "SUCCEEDED" and "WaitForCapture" not in entered


def test_a_failed_job_is_named_notified_in_words_and_recorded(aws: dict[str, Any]) -> None:
    window = aws["window"].handler({"Input": {"ScheduledTime": "2024-05-01T11:00:00Z"}}, FakeContext())
    before = published(aws, "MonitorFailed", "SampleCount")
    run = execute(aws, machine_definition(window, failing=True), {"ScheduledTime": "2024-05-01T11:00:00Z"})
    assert (run["status"], run["error"]) == ("FAILED", "MonitorJobFailed")
    assert "NoSuchKey" in run["cause"]  # the raw error leads the cause
    [envelope] = notices(aws)
    assert envelope["Subject"] == "mlops-abalone: monitoring run failed"
    name = run["executionArn"].rsplit(":", 1)[1]
    assert envelope["Message"].startswith(f"Monitoring run {name} of {ENDPOINT} failed: MonitorJobFailed: ")
    assert sum(published(aws, "MonitorFailed", "SampleCount")) == sum(before) + 1
    assert max(published(aws, "MonitorFailed")) == 1.0


def test_message_texts_render_for_both_targets() -> None:
    rendered = notifications.render("quality_breach", None, {"endpoint": "ep", "rule": "rmse above 3", "retrain": "R."})
    paths, template = rendered.eventbridge({"alarm": "$.a", "reason": "$.r", "time": "$.t"})
    assert json.loads(template) == "Model quality of ep breached rmse above 3 at <time>: <reason> R."
    assert paths == {"time": "$.t", "reason": "$.r"}
    gate = notifications.render("gate_failed", 'Run {run_id}: {metric} = {value} ("{rule}")',
                                {"project": "p", "metric": "rmse", "rule": "rmse < 3.0"})
    assert gate.template == 'Run {}: rmse = {} ("rmse < 3.0")' and gate.arguments == ("run_id", "value")
    assert asl.fmt(gate.template, "$.RunId", "$.v") == (
        "States.Format('Run {}: rmse = {} (\"rmse < 3.0\")', $.RunId, $.v)")
    with pytest.raises(ValueError, match="unknown placeholder"):
        notifications.check("drift", "{rule}")
    for event, spec in notifications.EVENTS.items():
        notifications.check(event, spec.text)  # every default is valid for its renderer
        assert spec.what, event


def test_the_readme_lists_every_message_with_its_default() -> None:
    """The README's table of notification events is notifications.EVENTS, row for row."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- notification-events:start", "<!-- notification-events:end -->"
    table = readme[readme.index(start):readme.index(end)].splitlines()[3:]
    expected = [f"| `{event}` | {spec.what} | {spec.text.replace('|', chr(92) + '|')} |"
                for event, spec in notifications.EVENTS.items()]
    assert [row for row in table if row.strip()] == expected
