"""The batch stack (``deployment.mode`` batch or both): config validation, which stacks and
pipeline stages each mode has, the retraining rule on the batch alarms, and the batch state
machine's real definition executed in moto's Step Functions interpreter.

In moto, ``CheckGroundTruth`` (``s3:listObjectsV2``), ``ReadMetrics`` (``s3:getObject``),
``PublishMetrics`` (``cloudwatch:putMetricData``) and ``NotifyFailure`` (``sns:publish``) run
against moto's services. Moto cannot run the SageMaker integrations (the model registry, models,
``.sync`` jobs), so those Tasks are replaced by Pass states whose ``Result`` is the real API's
response shape (ListModelPackages, DescribeModelPackage, CreateModel, DescribeTransformJob as
the ``.sync`` output), with the original ``ResultPath`` and ``Next``; the monitor job by an
``s3:putObject`` of the ``metrics.json`` it writes, at the key the definition reads; a failing
job by a ``getObject`` of a missing key, keeping the original ``Catch``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from mlops_templates import asl, config, render
from mlops_templates.errors import ConfigError
from mlops_templates.stacks import batch, enabled, pipeline, run_stacks
from mlops_templates.stacks.batch import definition as d

from . import sfn_patches
from .conftest import FAKE_CREDENTIALS

BATCH = {"deployment": {"mode": "batch"}}


def test_realtime_is_the_default_and_renders_no_batch_stack() -> None:
    cfg = config.parse({})
    assert cfg.deployment.mode == "realtime"
    assert run_stacks(cfg) == ("workflow", "deploy-dev", "deploy-prd")
    assert "batch.yaml" not in render.render(cfg)


@pytest.mark.parametrize("mode, stacks", [
    ("batch", ("workflow", "batch")),
    ("both", ("workflow", "deploy-dev", "deploy-prd", "batch")),
])
def test_each_mode_renders_and_deploys_its_stacks(mode: str, stacks: tuple[str, ...]) -> None:
    cfg = config.parse({"deployment": {"mode": mode}})
    assert run_stacks(cfg) == stacks
    rendered = render.render(cfg)
    assert {f"{s}.yaml" for s in stacks} <= set(rendered)
    assert ("deploy-prd.yaml" in rendered) == (mode == "both")
    stages = [s["Name"] for s in _pipeline(cfg)["Resources"]["Pipeline"]["Properties"]["Stages"]]
    expected = ["Source", "Build", "Train", "DeployBatch"] + (["DeployDev"] if mode == "both" else [])
    assert stages == expected


def _pipeline(cfg: config.Config) -> dict[str, Any]:
    return json.loads(json.dumps(pipeline.build(cfg).to_dict()))


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["realtime", "batch", "both"]))
def test_with_mode_batch_no_endpoint_stack_is_enabled(mode: str) -> None:
    cfg = config.parse({"deployment": {"mode": mode}})
    for name in ("deploy-dev", "deploy-prd"):
        assert enabled(name, cfg) == (mode != "batch")
    assert enabled("batch", cfg) == (mode != "realtime")


@pytest.mark.parametrize("batch_settings, words", [
    ({"input_prefix": "in/", "output_prefix": "in/out/"}, ["batch.input_prefix 'in/'", "batch.output_prefix 'in/out/'"]),
    ({"input_prefix": "a/b/", "output_prefix": "a/"}, ["'a/b/'", "'a/'", "overlap"]),
    ({"ground_truth_prefix": "batch/input/labels/"}, ["ground_truth_prefix", "input_prefix"]),
    ({"input_prefix": "/abs/"}, ["input_prefix"]),
])
def test_overlapping_or_bad_prefixes_are_refused_naming_both(batch_settings: dict[str, str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse({**BATCH, "batch": batch_settings})
    for word in words:
        assert word in str(err.value)


def test_batch_files_may_not_lie_under_the_training_data_prefix() -> None:
    with pytest.raises(ConfigError, match="pipeline.data_prefix 'training/'"):
        config.parse({**BATCH, "batch": {"input_prefix": "training/batch/"}})


def test_an_unknown_mode_and_a_ci_orchestrator_are_refused() -> None:
    with pytest.raises(ConfigError, match="deployment.mode"):
        config.parse({"deployment": {"mode": "stream"}})
    with pytest.raises(ConfigError, match="CodePipeline"):
        config.parse({**BATCH, "pipeline": {"orchestrator": "github"}})


@pytest.mark.parametrize("mode", ["batch", "both"])
def test_the_retraining_rule_matches_the_batch_alarms_by_name(mode: str) -> None:
    cfg = config.parse({"deployment": {"mode": mode}})
    stack = json.loads(json.dumps(batch.build(cfg).to_dict()))
    alarms = {p["Properties"]["AlarmName"] for p in stack["Resources"].values() if p["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == {"mlops-abalone-batch-drift", "mlops-abalone-batch-quality"}
    rule = _pipeline(cfg)["Resources"]["RetrainOnDriftRule"]["Properties"]["EventPattern"]
    matched = {r["Fn::Sub"].rsplit("alarm:", 1)[1].replace("${SageMakerProjectName}", "abalone") for r in rule["resources"]}
    assert alarms <= matched
    assert ("mlops-abalone-prd-drift" in matched) == (mode == "both")


def test_the_upload_rule_matches_the_input_prefix_and_starts_only_this_machine() -> None:
    t = json.loads(json.dumps(batch.build(config.parse(BATCH)).to_dict()))
    rule = t["Resources"]["BatchUploadRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"prefix": "batch/input/"}]
    [statement, *_] = t["Resources"]["BatchUploadRuleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["states:StartExecution"] and statement["Resource"] == [{"Ref": "BatchStateMachine"}]
    assert "BatchSchedule" not in t["Resources"]  # no schedule_expression, no schedule


def test_the_transform_asks_the_container_for_its_settings_and_keeps_row_ids() -> None:
    job = d.definition(config.parse(BATCH))["States"][d.TRANSFORM]
    params = job["Parameters"]
    assert job["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    assert "MaxPayloadInMB" not in params and "MaxConcurrentTransforms" not in params
    assert params["BatchStrategy"] == "MultiRecord" and params["TransformInput"]["SplitType"] == "Line"
    assert params["DataProcessing"] == {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$"}
    assert params["TransformOutput"]["KmsKeyId"] == params["TransformResources"]["VolumeKmsKeyId"] == "${KmsKeyArn}"
    assert job["TimeoutSeconds"] == 3600


# ------------------------------------------------------------- the machine in moto

REGION, ACCOUNT = "us-east-1", "123456789012"
BUCKET = "mlops-abalone-data"
PACKAGE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/mlops-abalone-models/3"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-abalone:r1"
METRICS = {"Namespace": "mlops/abalone", "MetricData": [
    {"MetricName": "FeaturesDrifted", "Dimensions": [{"Name": "EndpointName", "Value": "mlops-abalone-batch"}],
     "Value": 1.0, "Unit": "Count"}]}


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
            topic = clients["sns"].create_topic(Name="mlops-abalone-notifications")["TopicArn"]
            queue = clients["sqs"].create_queue(QueueName="notices")["QueueUrl"]
            arn = clients["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            clients["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            yield {"clients": clients, "topic": topic, "queue": queue}


def _stub(states: dict[str, Any], name: str, result: Any) -> None:
    """A Task replaced by a Pass with the API's response, wired like the Task."""
    task = states[name]
    states[name] = {"Type": "Pass", "Result": result, "ResultPath": task.get("ResultPath"), "Next": task["Next"]}
    del states[f"{name}Error"]


def machine(aws: dict[str, Any], approved: bool = True, transform_fails: bool = False) -> dict[str, Any]:
    definition = copy.deepcopy(asl.substitute(d.definition(config.parse(BATCH)), {
        "SageMakerRoleArn": f"arn:aws:iam::{ACCOUNT}:role/sm", "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k",
        "DataBucket": BUCKET, "NotificationTopicArn": aws["topic"]}))
    states = definition["States"]
    summaries = [{"ModelPackageArn": PACKAGE, "ModelPackageGroupName": "mlops-abalone-models",
                  "ModelPackageVersion": 3, "ModelApprovalStatus": "Approved",
                  "ModelPackageStatus": "Completed", "CreationTime": "2026-01-01T00:00:00Z"}] if approved else []
    _stub(states, d.FIND_MODEL, {"ModelPackageSummaryList": summaries})
    baseline = "s3://mlops-abalone-art/runs/r1/a/baseline"
    _stub(states, d.DESCRIBE_MODEL, {
        "ModelPackageArn": PACKAGE, "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://mlops-abalone-art/model.tar.gz"}]},
        "DriftCheckBaselines": {"ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": f"{baseline}/statistics.json"},
            "Constraints": {"ContentType": "application/json", "S3Uri": f"{baseline}/constraints.json"}}}})
    _stub(states, d.CREATE_MODEL, {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/mlops-abalone-batch-0a1b2c3d-0"})
    job = "mlops-abalone-batch-0a1b2c3d-0"
    if transform_fails:
        task = states[d.TRANSFORM]
        states[d.TRANSFORM] = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
                               "Parameters": {"Bucket": BUCKET, "Key": "no/such/key"},
                               **{k: task[k] for k in ("ResultPath", "Catch", "Next")}}
    else:
        _stub(states, d.TRANSFORM, {"TransformJobName": job, "TransformJobStatus": "Completed", "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/batch/output/{job}/predictions", "Accept": "text/csv", "AssembleWith": "Line"}})
    monitor = states[d.MONITOR]
    states[d.MONITOR] = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:putObject", "Parameters": {
        "Bucket.$": "$.Run.Bucket", "Key": f"batch/output/{job}/monitoring/metrics.json", "Body": json.dumps(METRICS),
        "Metadata": {"job.$": monitor["Parameters"]["ProcessingJobName.$"],
                     "inputs.$": "States.JsonToString($.MonitorInputs.Inputs)"}},
        **{k: monitor[k] for k in ("ResultPath", "Catch", "Next")}}
    _stub(states, d.DELETE_MODEL, {})
    assert asl.problems(definition) == []
    return definition


def execute(aws: dict[str, Any], definition: dict[str, Any], execution_input: dict[str, Any]) -> dict[str, Any]:
    return sfn_patches.execute(aws, definition, execution_input, "batch")


notices = sfn_patches.notices


def entered(run: dict[str, Any]) -> list[str]:
    return [e["stateEnteredEventDetails"]["name"] for e in run["history"] if "stateEnteredEventDetails" in e]


def test_an_upload_is_transformed_monitored_and_its_metrics_published(aws: dict[str, Any]) -> None:
    s3 = aws["clients"]["s3"]
    s3.put_object(Bucket=BUCKET, Key="batch/ground-truth/labels.jsonl", Body=b"{}\n")
    run = execute(aws, machine(aws), {"Bucket": BUCKET, "Key": "batch/input/day-1.csv"})
    assert run["status"] == "SUCCEEDED", run
    path = entered(run)
    assert path[:3] == ["Start", "ObjectInput", "FindModel"]
    assert "WithGroundTruth" in path and path[-3:] == ["PublishMetrics", "DeleteModel", "Succeeded"]
    head = s3.head_object(Bucket=BUCKET, Key="batch/output/mlops-abalone-batch-0a1b2c3d-0/monitoring/metrics.json")
    assert head["Metadata"]["job"].startswith("mlops-abalone-batch-mon-") and head["Metadata"]["job"].endswith("-0")
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in json.loads(head["Metadata"]["inputs"])}
    assert inputs["ground_truth"] == f"s3://{BUCKET}/batch/ground-truth/"
    assert inputs["capture"].endswith("/predictions") and inputs["statistics"].endswith("statistics.json")
    stats = aws["clients"]["cloudwatch"].get_metric_statistics(
        Namespace="mlops/abalone", MetricName="FeaturesDrifted",
        Dimensions=[{"Name": "EndpointName", "Value": "mlops-abalone-batch"}],
        StartTime=time.time() - 3600, EndTime=time.time() + 3600, Period=60, Statistics=["Maximum"])
    assert [p["Maximum"] for p in stats["Datapoints"]] == [1.0]
    assert notices(aws) == []


def test_a_scheduled_run_transforms_the_prefix() -> None:
    states = d.definition(config.parse(BATCH))["States"]
    assert states[d.PREFIX_INPUT]["Parameters"]["InputUri"] == "s3://${DataBucket}/batch/input/"


def test_no_approved_model_fails_with_a_notice_saying_how_to_approve(aws: dict[str, Any]) -> None:
    run = execute(aws, machine(aws, approved=False), {"ScheduledTime": "2026-01-01T02:00:00Z"})
    assert (run["status"], run["error"]) == ("FAILED", "NoApprovedModel")
    assert "DescribeModel" not in entered(run) and "PrefixInput" in entered(run)
    [envelope] = notices(aws)
    assert envelope["Subject"] == "mlops-abalone: batch run failed"
    assert "has no Approved version" in envelope["Message"] and "update-model-package" in envelope["Message"]


def test_a_failed_transform_is_named_and_notified(aws: dict[str, Any]) -> None:
    run = execute(aws, machine(aws, transform_fails=True), {"Bucket": BUCKET, "Key": "batch/input/day-2.csv"})
    assert (run["status"], run["error"]) == ("FAILED", "TransformJobFailed")
    assert "NoSuchKey" in run["cause"] and "DeleteModel" not in entered(run)
    [envelope] = notices(aws)
    name = run["executionArn"].rsplit(":", 1)[1]
    assert envelope["Message"].startswith(f"Batch run {name} of mlops-abalone failed: TransformJobFailed: ")


def test_the_registry_promotion_exists_only_with_a_production_endpoint() -> None:
    """Approving a version deploys the production endpoint: without one (mode batch) there is
    no promotion; the batch stack reads the newest approved version itself."""
    for mode, promoted in (("batch", False), ("both", True), ("realtime", True)):
        resources = _pipeline(config.parse({"deployment": {"mode": mode}}))["Resources"]
        assert ("PromoteProject" in resources) == promoted, mode
        assert ("RegistryChangedRule" in resources) == promoted, mode


# ------------------------------------------------------------- the alarms' notices

#: The batch alarms' notice rules, as deploy-prd's: logical ID -> (rule name, alarm).
NOTICES = {"DriftNoticeRule": ("mlops-abalone-batch-notice-drift", "DriftAlarm"),
           "QualityNoticeRule": ("mlops-abalone-batch-notice-quality", "ModelQualityAlarm")}
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"


def _batch_stack(mode: str = "batch") -> dict[str, Any]:
    return json.loads(json.dumps(batch.build(config.parse({"deployment": {"mode": mode}})).to_dict()))


@pytest.mark.parametrize("mode", ["batch", "both"])
def test_the_batch_alarms_notify_the_projects_topic_through_rules_like_production(mode: str) -> None:
    """No alarm actions (subscribers would get the alarm's raw JSON): a rule per alarm sends
    its ALARM state change to the project's topic, which lets exactly these rules publish."""
    resources = _batch_stack(mode)["Resources"]
    for alarm in ("DriftAlarm", "ModelQualityAlarm"):
        assert not {"AlarmActions", "OKActions", "InsufficientDataActions"} & set(resources[alarm]["Properties"])
    rules = {k: r["Properties"] for k, r in resources.items() if k in NOTICES}
    assert set(rules) == set(NOTICES)
    for logical_id, (name, alarm) in NOTICES.items():
        rule = rules[logical_id]
        assert rule["Name"] == name and rule["State"] == "ENABLED"
        assert rule["EventPattern"] == {
            "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
            "resources": [{"Fn::GetAtt": [alarm, "Arn"]}], "detail": {"state": {"value": ["ALARM"]}}}
        [target] = rule["Targets"]
        assert target["Arn"] == {"Ref": "NotificationTopicArn"} and "RoleArn" not in target
    policy = _pipeline(config.parse({"deployment": {"mode": mode}}))["Resources"]["NotificationTopicPolicy"]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    sources = [s["Fn::Sub"].rsplit(":rule/", 1)[1] for s in statement["Condition"]["ArnEquals"]["aws:SourceArn"]]
    assert {"mlops-${SageMakerProjectName}-batch-notice-drift",
            "mlops-${SageMakerProjectName}-batch-notice-quality"} <= set(sources)


def test_without_a_batch_stack_the_topic_admits_no_batch_notices() -> None:
    policy = _pipeline(config.parse({}))["Resources"]["NotificationTopicPolicy"]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert not any("batch" in s["Fn::Sub"] for s in statement["Condition"]["ArnEquals"]["aws:SourceArn"])


def _alarm_event(alarm: str, state: str) -> dict[str, Any]:
    """A CloudWatch alarm state change as EventBridge delivers it
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-eventbridge.html)."""
    return {"Source": "aws.cloudwatch", "DetailType": "CloudWatch Alarm State Change",
            "Resources": [ALARM_ARN + alarm], "Detail": json.dumps({
                "alarmName": alarm, "state": {"value": state, "reason": "Threshold Crossed: 1 datapoint [2.0]"},
                "previousState": {"value": "OK" if state == "ALARM" else "ALARM"}})}


def test_a_firing_batch_alarm_sends_one_readable_message_to_the_topic(aws: dict[str, Any]) -> None:
    """The notice rules in moto's EventBridge: an alarm going to ALARM is one message in
    words; going back to OK is none. (Moto's EventBridge delivers to SQS, not SNS: a queue
    stands in for the topic; the target's transformed input is what the topic publishes.)"""
    resources = _batch_stack()["Resources"]
    names = {"DriftAlarm": "mlops-abalone-batch-drift", "ModelQualityAlarm": "mlops-abalone-batch-quality"}
    events, sqs = boto3.client("events", region_name=REGION), aws["clients"]["sqs"]
    queue = sqs.create_queue(QueueName="topic-stand-in")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for logical_id, (name, alarm) in NOTICES.items():
        rule = resources[logical_id]["Properties"]
        pattern = {**rule["EventPattern"], "resources": [ALARM_ARN + names[alarm]]}
        events.put_rule(Name=name, EventPattern=json.dumps(pattern), State=rule["State"])
        [target] = rule["Targets"]
        events.put_targets(Rule=name, Targets=[{
            "Id": target["Id"], "Arn": queue_arn, "InputTransformer": target["InputTransformer"]}])

    def received() -> list[str]:
        found = []
        while batch_ := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
            for message in batch_:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    try:
        events.put_events(Entries=[_alarm_event("mlops-abalone-batch-drift", "ALARM")])
        drift = received()
        events.put_events(Entries=[_alarm_event("mlops-abalone-batch-quality", "ALARM"),
                                   _alarm_event("mlops-abalone-batch-drift", "OK")])
        quality = received()
    finally:
        for name, _ in NOTICES.values():
            events.remove_targets(Rule=name, Ids=["Notify"])
            events.delete_rule(Name=name)
        sqs.delete_queue(QueueUrl=queue)
    reason = "Threshold Crossed: 1 datapoint [2.0] The pipeline starts a retraining run."
    assert [m.split(" at ")[0] for m in drift] == ["Data drift on mlops-abalone-batch"]
    assert drift[0].endswith(f": {reason}")
    assert [m.split(" at ")[0] for m in quality] == ["Model quality of mlops-abalone-batch breached rmse above 3"]
    assert quality[0].endswith(f": {reason}")


@pytest.mark.parametrize(("mode", "expected"), [
    ("batch", ["pipeline-failed", "run-started", "run-succeeded",
               "batch-notice-drift", "batch-notice-quality"]),
    ("both", ["pipeline-failed", "run-started", "run-succeeded", "registry-rejected",
              "batch-notice-drift", "batch-notice-quality"]),
])
def test_the_topic_admits_exactly_the_notice_rules_the_mode_creates(mode: str, expected: list[str]) -> None:
    # batch mode has no promotion, so no registry rejection notice rule to admit
    policy = _pipeline(config.parse({"deployment": {"mode": mode}}))["Resources"]["NotificationTopicPolicy"]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    sources = [s["Fn::Sub"].rsplit(":rule/", 1)[1] for s in statement["Condition"]["ArnEquals"]["aws:SourceArn"]]
    assert sources == [f"mlops-${{SageMakerProjectName}}-{component}" for component in expected]
