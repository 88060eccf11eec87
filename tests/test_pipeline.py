"""The pipeline stack: properties that must never regress, and the build's contract.

Variants cover the CodeCommit source, a created VPC, existing subnets, scheduled
retraining without drift retraining, and a connection ARN asked for at launch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mlops_templates import config, contract, lint, naming
from mlops_templates.errors import ConfigError
from mlops_templates.stacks import pipeline, pipeline_build, run_stacks
from mlops_templates.stacks.pipeline import network, policies
from mlops_templates.stacks.pipeline.names import ProjectNames, max_project_name_length

from .conftest import EXAMPLE_CONFIG, REPO
from .variants import SUBNETS, rendered, template, variant_config

#: The variants whose pipeline differs: source, schedule, network.
VARIANTS = ["example", "codecommit-schedule", "create-vpc", "existing-subnets", "defaults"]
from .template_checks import assert_parameters_constrained_and_used


def of_type(tpl: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == resource_type}


def props(tpl: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return tpl["Resources"][logical_id]["Properties"]


def stage_actions(tpl: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    stages = props(tpl, pipeline.PIPELINE)["Stages"]
    return next(s["Actions"] for s in stages if s["Name"] == stage)


def statements(tpl: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every IAM role's inline policies."""
    found = []
    for logical_id, role in of_type(tpl, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


def resource_text(resource: Any) -> str:
    if isinstance(resource, str):
        return resource
    if "Fn::Sub" in resource:
        return resource["Fn::Sub"]
    if "Fn::Join" in resource:
        return "".join(
            f"<{p['Fn::GetAtt'][0]}.{p['Fn::GetAtt'][1]}>" if isinstance(p, dict) else p
            for p in resource["Fn::Join"][1]
        )
    if "Fn::GetAtt" in resource:
        return f"<{resource['Fn::GetAtt'][0]}.{resource['Fn::GetAtt'][1]}>"
    if "Ref" in resource:
        return f"<{resource['Ref']}>"
    raise AssertionError(f"unexpected resource expression {resource}")


# ----------------------------------------------------------------- lint


# tests/test_templates.py lints the rendering of mlops.yaml ("example").
@pytest.mark.parametrize("name", [name for name in VARIANTS if name != "example"])
def test_cfn_lint_has_no_findings(name: str) -> None:
    findings = lint.cfn_lint_text(rendered(name), f"{name}/pipeline.yaml", ["us-east-1", "eu-west-1"])
    assert findings == [], "\n".join(map(str, findings))


def test_checkov_suppressions_carry_reasons() -> None:
    for name in VARIANTS:
        for logical_id, resource in template(name)["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip["comment"].split()) >= 6, f"{name}/{logical_id}: {skip}"


# ----------------------------------------------------------------- encryption, exposure


@pytest.mark.parametrize("name", list(VARIANTS))
def test_kms_on_every_bucket_topic_log_group_build_and_store(name: str) -> None:
    tpl = template(name)
    key_arn = {"Fn::GetAtt": [pipeline.KEY, "Arn"]}
    for logical_id, bucket in of_type(tpl, "AWS::S3::Bucket").items():
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        default = rule["ServerSideEncryptionByDefault"]
        skips = {s["id"] for s in bucket.get("Metadata", {}).get("checkov", {}).get("skip", [])}
        if logical_id == pipeline.LOG_BUCKET:
            # The access-log bucket is the one documented exception (S3 log delivery).
            assert default == {"SSEAlgorithm": "AES256"} and "CKV_AWS_145" in skips
        else:
            assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, logical_id
    for topic in of_type(tpl, "AWS::SNS::Topic").values():
        assert topic["Properties"]["KmsMasterKeyId"] == key_arn
    groups = of_type(tpl, "AWS::Logs::LogGroup")
    assert groups
    for group in groups.values():
        assert group["Properties"]["KmsKeyId"] == key_arn
        assert group["Properties"]["RetentionInDays"] >= 365
    for project in of_type(tpl, "AWS::CodeBuild::Project").values():
        assert project["Properties"]["EncryptionKey"] == key_arn
    store = props(tpl, pipeline.PIPELINE)["ArtifactStore"]
    assert store["EncryptionKey"] == {"Id": key_arn, "Type": "KMS"}
    repo = props(tpl, pipeline.REPOSITORY)
    assert repo["EncryptionConfiguration"] == {"EncryptionType": "KMS", "KmsKey": key_arn}
    key = props(tpl, pipeline.KEY)
    assert key["EnableKeyRotation"] is True
    prefix = variant_config(name).project.prefix
    assert props(tpl, pipeline.KEY_ALIAS)["AliasName"] == {
        "Fn::Sub": f"alias/{prefix}-${{SageMakerProjectName}}"
    }


@pytest.mark.parametrize("name", list(VARIANTS))
def test_no_public_bucket_and_tls_only_policy_on_every_bucket(name: str) -> None:
    tpl = template(name)
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
        for p in of_type(tpl, "AWS::S3::BucketPolicy").values()
    }
    buckets = of_type(tpl, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for logical_id, bucket in buckets.items():
        block = bucket["Properties"]["PublicAccessBlockConfiguration"]
        assert all(block[k] is True for k in (
            "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"
        ))
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
        assert "AccessControl" not in bucket["Properties"]
        deny = [s for s in policies[logical_id]["Statement"] if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": False}}
        assert deny[0]["Principal"] == "*"
        for statement in policies[logical_id]["Statement"]:
            if statement["Effect"] == "Allow":
                assert statement["Principal"] != "*", f"{logical_id} allows everyone"
    for logical_id in (pipeline.ARTIFACT_BUCKET, pipeline.DATA_BUCKET):
        logging = props(tpl, logical_id)["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": pipeline.LOG_BUCKET}
    events_on = props(tpl, pipeline.DATA_BUCKET)["NotificationConfiguration"]
    assert events_on == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_image_repository_is_scanned_immutable_and_pruned() -> None:
    repo = props(template("example"), pipeline.REPOSITORY)
    assert repo["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repo["ImageTagMutability"] == "IMMUTABLE"
    rules = json.loads(repo["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert [r["selection"]["tagStatus"] for r in rules] == ["untagged", "any"]
    assert rules[-1]["selection"]["countNumber"] == pipeline.IMAGES_KEPT


# ----------------------------------------------------------------- parameters


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_parameter_is_constrained_and_used(name: str) -> None:
    tpl = template(name)
    assert_parameters_constrained_and_used(tpl)
    for parameter_name, parameter in tpl["Parameters"].items():
        assert "AllowedPattern" in parameter and "MaxLength" in parameter, parameter_name


def test_project_name_parameter_fits_every_derived_name() -> None:
    tpl = template("example")
    parameter = tpl["Parameters"]["SageMakerProjectName"]
    assert parameter["MaxLength"] == max_project_name_length("mlops") == 20
    longest_base = naming.LIMITS["sagemaker"] - naming.JOB_NAME_AFTER_BASE  # job names
    assert parameter["MaxLength"] <= min(32, longest_base - len("mlops") - 1)
    pattern = re.compile(parameter["AllowedPattern"])
    for good in ("ab", "churn-2", "a" * 20):
        assert pattern.match(good)
    for bad in ("Abalone", "a_b", "-ab", "ab-", "a"):
        assert not pattern.match(bad) or len(bad) < parameter["MinLength"]
    # The longest name the Parameter accepts is a valid config name for the build.
    longest = config.parse({"project": {"name": "a" * parameter["MaxLength"]}})
    assert len(naming.physical_name(longest, "training")) <= 80
    with pytest.raises(ConfigError):
        config.parse({"project": {"name": "a" * (parameter["MaxLength"] + 1)}})


@pytest.mark.parametrize("prefix", ["ml", "mlops", "averyverylongprefix"])
def test_project_name_length_shrinks_with_the_prefix(prefix: str) -> None:
    longest = max_project_name_length(prefix)
    assert len(prefix) + 1 + longest <= naming.LIMITS["sagemaker"] - naming.JOB_NAME_AFTER_BASE
    ProjectNames(prefix).check()
    tpl = json.loads(pipeline.build(config.parse({"project": {"prefix": prefix, "name": "ab"}})).to_json())
    assert tpl["Parameters"]["SageMakerProjectName"]["MaxLength"] == longest


def test_email_parameter_defaults_to_none_and_gates_the_subscription() -> None:
    tpl = template("example")
    email = tpl["Parameters"][pipeline.NOTIFICATION_EMAIL]
    assert email["Default"] == "none"
    assert re.match(email["AllowedPattern"], "none")
    assert re.match(email["AllowedPattern"], "team@example.com")
    assert not re.match(email["AllowedPattern"], "")
    assert tpl["Conditions"][pipeline.HAS_EMAIL] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": pipeline.NOTIFICATION_EMAIL}, "none"]}]
    }
    subscription = tpl["Resources"][pipeline.SUBSCRIPTION]
    assert subscription["Condition"] == pipeline.HAS_EMAIL
    assert subscription["Properties"]["Protocol"] == "email"


def test_connection_arn_is_a_parameter_only_when_the_config_has_none() -> None:
    configured = template("example")
    assert pipeline.CONNECTION_ARN not in configured["Parameters"]
    source = stage_actions(configured, "Source")[0]["Configuration"]
    assert source["ConnectionArn"] == variant_config("example").pipeline.source.connection_arn
    asked = template("defaults")
    assert pipeline.CONNECTION_ARN in asked["Parameters"]
    source = stage_actions(asked, "Source")[0]["Configuration"]
    assert source["ConnectionArn"] == {"Ref": pipeline.CONNECTION_ARN}
    assert "Default" not in asked["Parameters"][pipeline.CONNECTION_ARN]


# ----------------------------------------------------------------- pipeline


@pytest.mark.parametrize("name", list(VARIANTS))
def test_pipeline_is_v2_with_the_stages_in_order(name: str) -> None:
    tpl = template(name)
    spec = props(tpl, pipeline.PIPELINE)
    assert spec["PipelineType"] == "V2"
    assert spec["ExecutionMode"] in ("QUEUED", "SUPERSEDED")
    assert [s["Name"] for s in spec["Stages"]] == [s for s in pipeline.STAGES if s != "DeployBatch"]
    assert [s["Name"] for s in spec["Stages"]] == [
        "Source", "Build", "Train", "DeployDev",
    ]  # the model registry drives production (the promotion), not a stage
    assert spec["Variables"][0]["Name"] == "TrainingDataUri"
    assert spec["Variables"][0]["DefaultValue"] == contract.LATEST
    providers = [
        [a["ActionTypeId"]["Provider"] for a in sorted(s["Actions"], key=lambda a: a["RunOrder"])]
        for s in spec["Stages"]
    ]
    source = "CodeCommit" if name == "codecommit-schedule" else "CodeStarSourceConnection"
    assert providers == [
        [source],
        ["CodeBuild"],
        ["CloudFormation", "StepFunctions", "CodeBuild"],
        ["CloudFormation"],
    ]


def test_artifacts_flow_from_producer_to_consumer() -> None:
    spec = props(template("example"), pipeline.PIPELINE)
    produced: set[str] = set()
    for stage in spec["Stages"]:
        for action in sorted(stage["Actions"], key=lambda a: a["RunOrder"]):
            for artifact in action.get("InputArtifacts", []):
                assert artifact["Name"] in produced, f"{action['Name']} reads {artifact['Name']} first"
            produced |= {a["Name"] for a in action.get("OutputArtifacts", [])}


def test_train_stage_deploys_the_workflow_then_runs_it() -> None:
    tpl = template("example")
    deploy, train, output = sorted(stage_actions(tpl, "Train"), key=lambda a: a["RunOrder"])
    cfg = variant_config("example")
    assert deploy["Configuration"]["StackName"] == {"Fn::Sub": "mlops-${SageMakerProjectName}-workflow"}
    # A retried run replaces a workflow stack whose first create failed.
    assert deploy["Configuration"]["ActionMode"] == "REPLACE_ON_FAILURE"
    assert deploy["Configuration"]["TemplatePath"] == "BuildOutput::workflow.yaml"
    assert deploy["Configuration"]["TemplateConfiguration"] == "BuildOutput::workflow.json"
    assert train["ActionTypeId"] == {
        "Category": "Invoke", "Owner": "AWS", "Provider": "StepFunctions", "Version": "1",
    }
    assert train["Configuration"]["InputType"] == "FilePath"
    assert train["Configuration"]["Input"] == contract.EXECUTION_INPUT
    machine = train["Configuration"]["StateMachineArn"]["Fn::Sub"]
    assert machine.endswith(":stateMachine:mlops-${SageMakerProjectName}-training")
    # The state machine name the workflow stack gets when the build renders it.
    demo = cfg.model_copy(update={"project": cfg.project.model_copy(update={"name": "demo"})})
    assert machine.split(":")[-1].replace("${SageMakerProjectName}", "demo") == (
        naming.physical_name(demo, "training")
    )
    assert train["OutputArtifacts"] == [{"Name": pipeline.TRAIN_OUTPUT}]
    assert output["Configuration"]["PrimarySource"] == pipeline.TRAIN_OUTPUT
    assert output["OutputArtifacts"] == [{"Name": pipeline.TRAIN_RESULT}]


@pytest.mark.parametrize(("stage", "stack"), [("DeployDev", "deploy-dev")])
def test_deploy_stages_take_the_training_output(stage: str, stack: str) -> None:
    (action,) = stage_actions(template("example"), stage)
    configuration = action["Configuration"]
    assert configuration["StackName"] == {"Fn::Sub": f"mlops-${{SageMakerProjectName}}-{stack}"}
    overrides = json.loads(configuration["ParameterOverrides"])
    assert set(overrides) == set(contract.TRAIN_OUTPUT_OVERRIDES[stack])
    for key, value in overrides.items():
        assert value == {"Fn::GetParam": [pipeline.TRAIN_RESULT, contract.TRAIN_OUTPUT, key]}
    assert {a["Name"] for a in action["InputArtifacts"]} == {pipeline.BUILD_OUTPUT, pipeline.TRAIN_RESULT}
    assert len(configuration["ParameterOverrides"]) <= 1000  # CodePipeline's limit
    if stack == "deploy-prd":
        assert "CAPABILITY_AUTO_EXPAND" in configuration["Capabilities"].split(",")
    # The overridden parameters exist in the stack the build renders.
    cfg = variant_config("example")
    from mlops_templates import stacks

    assert set(overrides) <= set(stacks.module(stack).build(cfg).parameters)


def test_no_stage_approves_or_deploys_production() -> None:
    """The registry is the one approval: no manual action, no deploy of deploy-prd."""
    spec = props(template("example"), pipeline.PIPELINE)
    actions = [a for s in spec["Stages"] for a in s["Actions"]]
    assert not [a for a in actions if a["ActionTypeId"]["Category"] == "Approval"]
    assert not [a for a in actions if "deploy-prd" in json.dumps(a["Configuration"])]


def test_codeconnections_source_triggers_on_the_branch() -> None:
    spec = props(template("example"), pipeline.PIPELINE)
    (trigger,) = spec["Triggers"]
    assert trigger["ProviderType"] == "CodeStarSourceConnection"
    assert trigger["GitConfiguration"]["Push"][0]["Branches"]["Includes"] == ["main"]
    source = stage_actions(template("example"), "Source")[0]["Configuration"]
    assert source["FullRepositoryId"] == "my-org/abalone-mlops"


def test_codecommit_source_uses_an_existing_repository_and_a_push_rule() -> None:
    tpl = template("codecommit-schedule")
    assert not of_type(tpl, "AWS::CodeCommit::Repository")
    source = stage_actions(tpl, "Source")[0]["Configuration"]
    repository = variant_config("codecommit-schedule").pipeline.source.repository
    assert source["RepositoryName"] == repository and source["PollForSourceChanges"] is False
    assert "Triggers" not in props(tpl, pipeline.PIPELINE)
    pattern = props(tpl, pipeline.SOURCE_RULE)["EventPattern"]
    assert pattern["detail"]["referenceName"] == ["main"]
    assert pattern["resources"][0]["Fn::Sub"].endswith(f":{repository}")


# ----------------------------------------------------------------- events


def test_data_upload_starts_the_pipeline() -> None:
    tpl = template("example")
    rule = props(tpl, pipeline.DATA_RULE)
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert rule["EventPattern"]["detail"] == {
        "bucket": {"name": [{"Ref": pipeline.DATA_BUCKET}]},
        "object": {"key": [{"prefix": "training/"}]},
    }
    (target,) = rule["Targets"]
    assert target["Arn"]["Fn::Sub"].endswith(":mlops-${SageMakerProjectName}-pipeline")
    assert target["RoleArn"] == {"Fn::GetAtt": [pipeline.EVENTS_ROLE, "Arn"]}


@pytest.mark.parametrize(
    ("name", "state", "drift"), [("example", "DISABLED", True), ("codecommit-schedule", "ENABLED", False)]
)
def test_retraining_rules_follow_the_config(name: str, state: str, drift: bool) -> None:
    tpl = template(name)
    schedule = props(tpl, pipeline.SCHEDULE_RULE)
    assert schedule["State"] == state
    assert schedule["ScheduleExpression"] == variant_config(name).pipeline.retrain_schedule
    assert (pipeline.DRIFT_RULE in tpl["Resources"]) is drift
    if drift:
        pattern = props(tpl, pipeline.DRIFT_RULE)["EventPattern"]
        assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
        # Both production alarms, by name (pipeline.retrain_on: [drift, quality]).
        alarms = [resource_text(r).rsplit(":alarm:", 1)[1] for r in pattern["resources"]]
        assert alarms == ["mlops-${SageMakerProjectName}-prd-drift", "mlops-${SageMakerProjectName}-prd-quality"]


@pytest.mark.parametrize(("retrain_on", "alarms"), [
    (["drift"], ["prd-drift"]), (["quality"], ["prd-quality"]), (["quality", "drift"], ["prd-quality", "prd-drift"]),
])
def test_the_retraining_rule_matches_the_configured_alarms(retrain_on: list[str], alarms: list[str]) -> None:
    cfg = config.parse({"pipeline": {"retrain_on": retrain_on}})
    tpl = json.loads(pipeline.build(cfg).to_json())
    resources = props(tpl, pipeline.DRIFT_RULE)["EventPattern"]["resources"]
    assert [resource_text(r).rsplit(":alarm:", 1)[1] for r in resources] == [
        f"mlops-${{SageMakerProjectName}}-{a}" for a in alarms
    ]


def test_model_monitor_retrains_on_its_drift_alarm_only() -> None:
    """Model Monitor's engine has no quality alarm: the default [drift, quality] matches drift."""
    cfg = config.parse({"monitoring": {"engine": "model_monitor"}})
    tpl = json.loads(pipeline.build(cfg).to_json())
    resources = props(tpl, pipeline.DRIFT_RULE)["EventPattern"]["resources"]
    assert [resource_text(r).rsplit(":alarm:", 1)[1] for r in resources] == ["mlops-${SageMakerProjectName}-prd-drift"]
    cfg = config.parse({"monitoring": {"engine": "model_monitor"}, "pipeline": {"retrain_on": ["quality"]}})
    assert pipeline.DRIFT_RULE not in json.loads(pipeline.build(cfg).to_json())["Resources"]


def test_retrain_on_drift_is_refused_with_its_replacement() -> None:
    with pytest.raises(ConfigError, match=r"retrain_on_drift became retrain_on"):
        config.parse({"pipeline": {"retrain_on_drift": True}})
    with pytest.raises(ConfigError, match="names an alarm twice"):
        config.parse({"pipeline": {"retrain_on": ["drift", "drift"]}})


def test_failed_runs_notify_with_a_readable_message() -> None:
    rule = props(template("example"), pipeline.FAILURE_RULE)
    assert rule["EventPattern"]["detail"]["state"] == ["FAILED"]
    (target,) = rule["Targets"]
    transformer = target["InputTransformer"]
    message = json.loads(transformer["InputTemplate"])  # a JSON string for SNS
    assert "<pipeline> failed" in message
    assert set(re.findall(r"<(\w+)>", message)) == set(transformer["InputPathsMap"])
    topic_policy = props(template("example"), pipeline.TOPIC_POLICY)["PolicyDocument"]["Statement"][0]
    assert topic_policy["Principal"] == {"Service": "events.amazonaws.com"}
    sources = [resource_text(a) for a in topic_policy["Condition"]["ArnEquals"]["aws:SourceArn"]]
    assert [s.rsplit("rule/", 1)[1] for s in sources] == [
        f"mlops-${{SageMakerProjectName}}-{c}"
        for c in ("pipeline-failed", "run-started", "run-succeeded", "registry-rejected")
    ]


@pytest.mark.parametrize(("rule", "detail"), [
    ("RunStartedRule", {"state": ["STARTED"]}),
    ("RunSucceededRule", {"state": ["SUCCEEDED"]}),
    ("VersionRejectedRule", {"ModelApprovalStatus": ["Rejected"]}),
])
def test_runs_that_start_or_end_and_rejections_notify_in_words(rule: str, detail: dict[str, Any]) -> None:
    tpl = template("example")
    found = props(tpl, rule)
    for key, value in detail.items():
        assert found["EventPattern"]["detail"][key] == value
    name = resource_text(found["Name"])
    topic_policy = props(tpl, pipeline.TOPIC_POLICY)["PolicyDocument"]["Statement"][0]
    assert any(resource_text(a).endswith(f"rule/{name}") for a in topic_policy["Condition"]["ArnEquals"]["aws:SourceArn"])
    (target,) = found["Targets"]
    message = json.loads(target["InputTransformer"]["InputTemplate"])
    assert "{" not in message and set(re.findall(r"<(\w+)>", message)) <= set(target["InputTransformer"]["InputPathsMap"])


# ----------------------------------------------------------------- IAM


@pytest.mark.parametrize("name", list(VARIANTS))
def test_no_iam_statement_allows_every_action(name: str) -> None:
    for logical_id, statement in statements(template(name)):
        for action in statement["Action"]:
            assert action != "*" and not action.endswith(":*"), f"{logical_id}: {action}"
        assert statement["Effect"] == "Allow"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_wildcard_resources_are_on_the_justified_list(name: str) -> None:
    patterns = [re.compile(p) for p, reason in policies.JUSTIFIED_WILDCARDS if reason]
    for logical_id, statement in statements(template(name)):
        for resource in statement["Resource"]:
            text = resource_text(resource)
            if "*" in text:
                assert any(p.search(text) for p in patterns), f"{logical_id} {statement['Sid']}: {text}"


def test_one_role_per_service() -> None:
    roles = of_type(template("create-vpc"), "AWS::IAM::Role")
    services = {
        logical_id: r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
        for logical_id, r in roles.items()
    }
    assert services == {
        pipeline.PIPELINE_ROLE: ["codepipeline.amazonaws.com"],
        pipeline.CODEBUILD_ROLE: ["codebuild.amazonaws.com"],
        pipeline.CLOUDFORMATION_ROLE: ["cloudformation.amazonaws.com"],
        pipeline.SAGEMAKER_ROLE: ["sagemaker.amazonaws.com"],
        pipeline.STATES_ROLE: ["states.amazonaws.com"],
        pipeline.EVENTS_ROLE: ["events.amazonaws.com"],
        "PromoteRole": ["codebuild.amazonaws.com"],
        network.FLOW_LOG_ROLE: ["vpc-flow-logs.amazonaws.com"],
        pipeline.TEARDOWN_ROLE: ["lambda.amazonaws.com"],
    }


def test_production_is_never_replaced_by_a_deployment() -> None:
    """REPLACE_ON_FAILURE deletes a failed stack and creates it again: right for the
    workflow and the dev endpoint, never for production."""
    tpl = template("example")
    modes = {
        stage: action["Configuration"]["ActionMode"]
        for stage in ("DeployDev",)
        for action in stage_actions(tpl, stage)
    }
    assert modes == {"DeployDev": "REPLACE_ON_FAILURE"}
    # The promotion deploys production: no role of the stack may delete it.
    deletes = [
        s for r, s in statements(tpl)
        if r in (pipeline.PIPELINE_ROLE, "PromoteRole") and "cloudformation:DeleteStack" in s["Action"]
    ]
    resources = [r["Fn::Sub"] for s in deletes for r in s["Resource"]]
    assert resources and not any("deploy-prd" in r for r in resources)


def _sid(tpl: dict[str, Any], role: str, sid: str) -> dict[str, Any]:
    return next(s for r, s in statements(tpl) if r == role and s.get("Sid") == sid)


#: The EventBridge role's statements (EventBridge identity-based policies: a rule's role
#: needs the action its target calls, https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-identity-based.html).
START_PIPELINE = {
    "Action": ["codepipeline:StartPipelineExecution"],
    "Effect": "Allow",
    "Resource": [
        {
            "Fn::Sub": "arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:"
            "mlops-${SageMakerProjectName}-pipeline"
        }
    ],
    "Sid": "StartPipeline",
}
START_PROMOTION = {
    "Action": ["codebuild:StartBuild"],
    "Effect": "Allow",
    "Resource": [
        {
            "Fn::Sub": "arn:${AWS::Partition}:codebuild:${AWS::Region}:${AWS::AccountId}:"
            "project/mlops-${SageMakerProjectName}-promote"
        }
    ],
    "Sid": "StartPromotion",
}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("realtime", [START_PIPELINE, START_PROMOTION]),
        ("both", [START_PIPELINE, START_PROMOTION]),
        # No production endpoint, no promote project: nothing else to start.
        ("batch", [START_PIPELINE]),
    ],
)
def test_events_role_starts_only_this_pipeline_and_an_existing_promotion(mode: str, expected: list[Any]) -> None:
    tpl = json.loads(pipeline.build(config.parse({"deployment": {"mode": mode}})).to_json())
    role_statements = [s for r, s in statements(tpl) if r == pipeline.EVENTS_ROLE]
    assert role_statements == expected
    assert ("PromoteProject" in tpl["Resources"]) == (mode != "batch")


def test_the_example_events_role_starts_the_pipeline_and_the_promotion() -> None:
    role_statements = [s for r, s in statements(template("example")) if r == pipeline.EVENTS_ROLE]
    assert role_statements == [START_PIPELINE, START_PROMOTION]


def test_states_role_is_scoped_to_project_jobs_and_passes_only_the_sagemaker_role() -> None:
    tpl = template("example")
    jobs = _sid(tpl, pipeline.STATES_ROLE, "RunJobs")
    assert {resource_text(r).split(":")[-1] for r in jobs["Resource"]} == {
        "training-job/mlops-${SageMakerProjectName}-*",
        "processing-job/mlops-${SageMakerProjectName}-*",
    }
    passing = _sid(tpl, pipeline.STATES_ROLE, "PassSageMakerRole")
    assert passing["Resource"] == [{"Fn::GetAtt": [pipeline.SAGEMAKER_ROLE, "Arn"]}]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    sync = _sid(tpl, pipeline.STATES_ROLE, "SyncJobEvents")
    assert sorted(sync["Action"]) == ["events:DescribeRule", "events:PutRule", "events:PutTargets"]
    assert all("StepFunctionsGetEventsFor" in resource_text(r) for r in sync["Resource"])
    assert _sid(tpl, pipeline.STATES_ROLE, "Notify")["Resource"] == [{"Ref": pipeline.TOPIC}]
    read = _sid(tpl, pipeline.STATES_ROLE, "ReadRunResults")
    assert read["Action"] == ["s3:GetObject"]
    assert resource_text(read["Resource"][0]) == "<ArtifactBucket.Arn>/runs/*"


def _cloudformation_statements(tpl: dict[str, Any]) -> list[dict[str, Any]]:
    policies = [
        r["Properties"] for r in of_type(tpl, "AWS::IAM::ManagedPolicy").values()
        if r["Properties"].get("Roles") == [{"Ref": pipeline.CLOUDFORMATION_ROLE}]
    ]
    assert policies, "the CloudFormation role's permissions are managed policies"
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_cloudformation_role_manages_only_the_per_run_roles() -> None:
    """It may create and change only roles named <prefix>-<project>-prd-*: never the
    pipeline's own roles (itself included) nor another project's."""
    tpl = template("example")
    for statement in _cloudformation_statements(tpl):
        iam_actions = [a for a in statement["Action"] if a.startswith("iam:")]
        if not iam_actions:
            continue
        resources = [r["Fn::Sub"] for r in statement["Resource"]]
        if iam_actions == ["iam:CreateServiceLinkedRole"]:
            assert resources == [
                (
                    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                    "sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant"
                )
            ]
        elif iam_actions == ["iam:PassRole"]:
            assert set(resources) == {
                "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/mlops-${SageMakerProjectName}-prd-*",
                "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/mlops-${SageMakerProjectName}-sagemaker",
                "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/mlops-${SageMakerProjectName}-states",
            }
        else:
            assert resources == ["arn:${AWS::Partition}:iam::${AWS::AccountId}:role/mlops-${SageMakerProjectName}-prd-*"]
    for role in of_type(tpl, "AWS::IAM::Role").values():
        assert not role["Properties"]["RoleName"]["Fn::Sub"].startswith("mlops-${SageMakerProjectName}-prd-")


def test_per_run_stacks_name_their_roles_and_create_no_keys() -> None:
    cfg = variant_config("example")
    from mlops_templates import stacks

    for stack in contract.RUN_STACKS:
        tpl = json.loads(stacks.module(stack).build(cfg).to_json())
        assert not of_type(tpl, "AWS::KMS::Key"), stack
        # The deploy role may manage <base>-prd-* roles, and <base>-batch-* in batch modes.
        prefix = "batch" if stack == "batch" else "prd"
        for logical_id, resource in of_type(tpl, "AWS::IAM::Role").items():
            assert resource["Properties"]["RoleName"].startswith(f"{naming.base(cfg)}-{prefix}-"), logical_id
        if stack == "deploy-prd":
            # API, two hooks, CodeDeploy; the monitor's window function, state machine, schedule
            assert len(of_type(tpl, "AWS::IAM::Role")) == 7
    assert not any(a == "kms:CreateKey" for s in _cloudformation_statements(template("example")) for a in s["Action"])


# ----------------------------------------------------------------- network


#: boto3 client name -> the VPC endpoint service it reaches.
CLIENT_ENDPOINTS = {
    "sagemaker": "sagemaker.api", "sagemaker-runtime": "sagemaker.runtime", "codedeploy": "codedeploy",
    "lambda": "lambda", "s3": "s3", "cloudwatch": "monitoring", "logs": "logs", "sts": "sts",
    "kms": "kms", "ecr": "ecr.api", "sns": "sns", "cloudformation": "cloudformation",
    "apigateway": "apigateway",
}


def test_every_api_a_function_in_the_vpc_calls_has_an_endpoint() -> None:
    """The functions deploy-prd places in the created VPC reach AWS only through its
    endpoints: every client their code creates needs one (an API without one fails at
    run time, e.g. a hook that cannot report to CodeDeploy rolls every deployment back)."""
    from mlops_templates.stacks import deploy_prd
    from mlops_templates.stacks.pipeline import network

    from .conftest import REPO

    cfg = variant_config("create-vpc")
    derived = config.parse(
        {**cfg.model_dump(mode="json", exclude_defaults=True),
         "network": {"subnet_ids": ["subnet-0123456789abcdef0"], "security_group_ids": ["sg-0123456789abcdef0"]}},
        "derived",
    )
    prd = json.loads(deploy_prd.build(derived).to_json())
    functions = [
        r["Properties"] for r in prd["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function" and "VpcConfig" in r["Properties"]
    ]
    assert len(functions) == 4  # API, two hooks, the monitor's window function
    available = set(network.INTERFACE_ENDPOINTS) | {"s3"}
    for function in functions:
        source = (REPO / "templates" / function["CodeUri"] / "app.py").resolve().read_text(encoding="utf-8")
        clients = set(re.findall(r'boto3\.client\(\s*"([a-z0-9-]+)"', source))
        assert clients, function["CodeUri"]
        missing = {CLIENT_ENDPOINTS[c] for c in clients} - available
        assert not missing, f"{function['CodeUri']} calls {sorted(missing)} with no VPC endpoint"


def test_created_vpc_is_private_with_the_endpoints_sagemaker_needs() -> None:
    tpl = template("create-vpc")
    assert not of_type(tpl, "AWS::EC2::InternetGateway")
    assert not of_type(tpl, "AWS::EC2::NatGateway")
    subnets = of_type(tpl, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    zones = [s["Properties"]["AvailabilityZone"] for s in subnets.values()]
    assert zones == [{"Fn::Select": [i, {"Fn::GetAZs": ""}]} for i in range(2)]
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())
    endpoints = of_type(tpl, "AWS::EC2::VPCEndpoint")
    services = {e["Properties"]["ServiceName"]["Fn::Sub"].split("}.", 1)[1] for e in endpoints.values()}
    assert services == {
        "sagemaker.api", "sagemaker.runtime", "sts", "logs", "ecr.api", "ecr.dkr", "monitoring", "kms", "s3",
        "codedeploy", "lambda",
    }
    for endpoint in endpoints.values():
        if endpoint["Properties"]["VpcEndpointType"] == "Interface":
            assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    (flow_log,) = of_type(tpl, "AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    # The build passes the created network on to the per-run stacks.
    env = {
        v["Name"]: v["Value"]
        for v in props(tpl, pipeline.BUILD_PROJECT)["Environment"]["EnvironmentVariables"]
    }
    assert env["SUBNET_IDS"] == {"Fn::Join": [",", [{"Ref": s} for s in network.SUBNETS]]}
    assert env["SECURITY_GROUP_IDS"] == {"Ref": network.WORKLOAD_SECURITY_GROUP}
    assert "VpcConfig" not in props(tpl, pipeline.BUILD_PROJECT)  # it needs PyPI and Docker Hub


def test_existing_subnets_place_the_build_in_the_vpc() -> None:
    build = props(template("existing-subnets"), pipeline.BUILD_PROJECT)
    assert build["VpcConfig"] == {
        "VpcId": "vpc-0123456789abcdef0",
        "Subnets": SUBNETS,
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
    }
    condition = _sid(template("existing-subnets"), pipeline.CODEBUILD_ROLE, "AttachToProjectSubnets")
    subnets = condition["Condition"]["ForAnyValue:StringLike"]["ec2:Subnet"]
    assert [resource_text(s).rsplit("/", 1)[1] for s in subnets] == SUBNETS
    assert "VpcConfig" not in props(template("example"), pipeline.BUILD_PROJECT)


def test_vpc_id_requires_subnets() -> None:
    with pytest.raises(ConfigError, match="vpc_id"):
        config.parse({"network": {"vpc_id": "vpc-0123456789abcdef0"}})


# ----------------------------------------------------------------- build contract


def test_build_project_environment_is_the_documented_contract() -> None:
    for name, extra in (("example", ()), ("create-vpc", contract.NETWORK_ENV)):
        build = props(template(name), pipeline.BUILD_PROJECT)
        names = [v["Name"] for v in build["Environment"]["EnvironmentVariables"]]
        assert names == [*contract.STACK_ENV, *extra]
        assert build["Environment"]["PrivilegedMode"] is True
        assert build["Environment"]["Image"] == "aws/codebuild/standard:7.0"
        skip = template(name)["Resources"][pipeline.BUILD_PROJECT]["Metadata"]["checkov"]["skip"]
        assert [s["id"] for s in skip] == ["CKV_AWS_316"] and "privileged" in skip[0]["comment"]
    (action,) = stage_actions(template("example"), "Build")
    action_env = json.loads(action["Configuration"]["EnvironmentVariables"])
    assert [v["name"] for v in action_env] == list(contract.ACTION_ENV)
    assert action["Namespace"] == pipeline.BUILD_NAMESPACE
    assert not props(template("example"), pipeline.TRAIN_OUTPUT_PROJECT)["Environment"]["PrivilegedMode"]


def test_buildspec_renders_valid_yaml_with_the_expected_commands() -> None:
    text = props(template("example"), pipeline.BUILD_PROJECT)["Source"]["BuildSpec"]
    spec = yaml.safe_load(text)
    assert str(spec["version"]) == "0.2"
    assert spec["env"]["exported-variables"] == list(contract.EXPORTED)
    phases = spec["phases"]
    assert phases["install"]["runtime-versions"]["python"] == pipeline.PYTHON_VERSION
    assert "python -m pip install --quiet ." in phases["install"]["commands"]
    build = "\n".join(phases["pre_build"]["commands"] + phases["build"]["commands"])
    assert "python -m mlops_templates.stacks.pipeline_build env" in build
    assert "docker login" in build
    assert 'docker build ${DOCKER_BUILD_ARGS} --tag "${IMAGE_URI}" container && docker push "${IMAGE_URI}"' in build
    assert (
        'mlops-templates -c "${CONFIG_FILE}" --project-name "${SAGEMAKER_PROJECT_NAME}" build --out build'
        in build
    )
    for stack in run_stacks(variant_config("example")):
        assert (
            f"aws cloudformation package --template-file build/{stack}.yaml "
            f'--s3-bucket "${{ARTIFACT_BUCKET}}"'
        ) in build
        assert f"--output-template-file build/out/{stack}.yaml" in build
    commands = phases["build"]["commands"]
    outputs = commands.index("python -m mlops_templates.stacks.pipeline_build outputs --out build/out")
    # ...then the run's build output and the source are stored for the promotion.
    stored = "\n".join(commands[outputs + 1:])
    assert '"s3://${ARTIFACT_BUCKET}/runs/${RUN_ID}/build/"' in stored
    assert f'"s3://${{ARTIFACT_BUCKET}}/{pipeline.builds.SOURCE_KEY}"' in stored
    assert spec["artifacts"]["base-directory"] == "build/out"
    assert set(spec["artifacts"]["files"]) == {
        *(f"{s}.yaml" for s in run_stacks(variant_config("example"))),
        *(f"{s}.json" for s in run_stacks(variant_config("example"))),
        contract.EXECUTION_INPUT,
    }
    # Every variable the buildspec reads is set by the stack, the action, `env` or CodeBuild.
    known = {
        *contract.STACK_ENV, *contract.ACTION_ENV, *contract.EXPORTED,
        "CONFIG_FILE", "DOCKER_BUILD_ARGS", "IMAGE_REPOSITORY_URI%%/*", "exports",
    }
    assert set(re.findall(r"\$\{([A-Za-z_%/*]+)\}", text)) <= known


def test_train_output_buildspec_runs_the_script_from_the_source_checkout() -> None:
    text = props(template("example"), pipeline.TRAIN_OUTPUT_PROJECT)["Source"]["BuildSpec"]
    spec = yaml.safe_load(text)
    (command,) = spec["phases"]["build"]["commands"]
    assert command.startswith(f'python "${{CODEBUILD_SRC_DIR_{pipeline.SOURCE_OUTPUT}}}/{pipeline.BUILD_SCRIPT}"')
    assert (REPO / pipeline.BUILD_SCRIPT).is_file()
    assert spec["artifacts"]["files"] == [contract.TRAIN_OUTPUT]


def test_render_directory_keeps_sam_code_paths_valid(tmp_path: Path) -> None:
    """The build renders into a top-level directory, like ``templates/``: CodeUri stays valid."""
    from mlops_templates import stacks

    tpl = json.loads(stacks.module("deploy-prd").build(variant_config("example")).to_json())
    uris = [r["Properties"]["CodeUri"] for r in tpl["Resources"].values() if "CodeUri" in r.get("Properties", {})]
    assert uris
    for uri in uris:
        assert (REPO / pipeline.RENDER_DIR / uri).resolve().is_dir(), uri


# ----------------------------------------------------------------- pipeline_build


def test_run_id_keeps_the_recognizable_part_of_the_execution_id() -> None:
    assert pipeline_build.run_id("1624A1D1-3699-43f0-8e1e-6bafd7fde791") == "1624a1d1-3699"
    assert pipeline_build.run_id("mlops-demo-build:0b9e1f0a-1111-2222-3333-444455556666") == (
        "0b9e1f0a-1111"
    )
    with pytest.raises(pipeline_build.BuildError):
        pipeline_build.run_id("---")


@given(st.text(min_size=1, max_size=80).filter(lambda s: re.search(r"[A-Za-z0-9]", s.rsplit(":", 1)[-1])))
def test_run_ids_are_short_lowercase_and_job_name_safe(execution_id: str) -> None:
    from mlops_templates.stacks import workflow

    value = pipeline_build.run_id(execution_id)
    assert re.fullmatch(workflow.RUN_ID_PATTERN, value)  # what the state machine accepts
    assert "--" not in value and len(value) <= naming.RUN_ID_MAX_LENGTH


class _FakeS3:
    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def get_paginator(self, name: str) -> _FakeS3:
        assert name == "list_objects_v2"
        return self

    def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(kwargs)
        return [{"Contents": page} if page else {} for page in self.pages]


def _obj(key: str, day: int) -> dict[str, Any]:
    return {"Key": key, "LastModified": datetime(2025, 1, day, tzinfo=UTC)}


def test_latest_object_is_the_newest_across_pages() -> None:
    s3 = _FakeS3([[_obj("training/a.csv", 3), _obj("training/", 9)], [_obj("training/b.csv", 5)], []])
    assert pipeline_build.latest_object_uri(s3, "data", "training/") == "s3://data/training/b.csv"
    assert s3.calls == [{"Bucket": "data", "Prefix": "training/"}]
    with pytest.raises(pipeline_build.BuildError, match="no training data under s3://data/training/"):
        pipeline_build.latest_object_uri(_FakeS3([[]]), "data", "training/")


def _build_env(**extra: str) -> dict[str, str]:
    env = {
        "PROJECT_PREFIX": "mlops",
        "SAGEMAKER_PROJECT_NAME": "demo",
        "SAGEMAKER_PROJECT_ID": "p-abc123",
        "CONFIG_FILE": str(EXAMPLE_CONFIG),
        "ARTIFACT_BUCKET": "art-bucket",
        "DATA_BUCKET": "data-bucket",
        "DATA_PREFIX": "training/",
        "KMS_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/k",
        "SAGEMAKER_ROLE_ARN": "arn:aws:iam::111122223333:role/mlops-demo-sagemaker",
        "STATES_ROLE_ARN": "arn:aws:iam::111122223333:role/mlops-demo-states",
        "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-east-1:111122223333:mlops-demo-notifications",
        "NOTIFICATION_EMAIL": "none",
        "IMAGE_REPOSITORY_NAME": "mlops-demo",
        "IMAGE_REPOSITORY_URI": "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-demo",
        "PIPELINE_EXECUTION_ID": "1624a1d1-3699-43f0-8e1e-6bafd7fde791",
        "TRAINING_DATA_URI": "latest",
    }
    return {**env, **extra}


def test_run_environment_picks_the_newest_upload_and_tags_the_image() -> None:
    s3 = _FakeS3([[_obj("training/abalone.csv", 2)]])
    values = pipeline_build.run_environment(_build_env(), s3)
    assert values == {
        "RUN_ID": "1624a1d1-3699",
        "CONFIG_FILE": str(EXAMPLE_CONFIG),
        "IMAGE_URI": "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-demo:1624a1d1-3699",
        "TRAINING_DATA_URI": "s3://data-bucket/training/abalone.csv",
        "DOCKER_BUILD_ARGS": "",
    }
    pinned = pipeline_build.run_environment(_build_env(TRAINING_DATA_URI="s3://other/x/y.csv"))
    assert pinned["TRAINING_DATA_URI"] == "s3://other/x/y.csv"
    with pytest.raises(pipeline_build.BuildError, match="TrainingDataUri"):
        pipeline_build.run_environment(_build_env(TRAINING_DATA_URI="https://example.com/x.csv"))
    with pytest.raises(pipeline_build.BuildError, match="prefix"):
        pipeline_build.run_environment(_build_env(PROJECT_PREFIX="acme"), s3)
    with pytest.raises(pipeline_build.BuildError, match="DATA_BUCKET"):
        pipeline_build.run_environment({**_build_env(), "DATA_BUCKET": ""}, s3)


def test_gpu_training_builds_the_gpu_image() -> None:
    gpu = config.parse({"training": {"instance_type": "ml.g5.xlarge"}})
    assert pipeline_build.docker_build_args(gpu) == "--build-arg XGBOOST_VARIANT=cuda"
    assert pipeline_build.docker_build_args(config.parse({})) == ""
    dockerfile = (REPO / pipeline.CONTAINER_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert "ARG XGBOOST_VARIANT" in dockerfile


def test_created_network_is_written_into_a_derived_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "mlops.yaml"
    source.write_text(EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(
        "create_vpc: false", "create_vpc: true"
    ), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    env = _build_env(
        CONFIG_FILE=str(source),
        TRAINING_DATA_URI="s3://data-bucket/training/a.csv",
        SUBNET_IDS="subnet-0123456789abcdef0,subnet-0fedcba9876543210",
        SECURITY_GROUP_IDS="sg-0123456789abcdef0",
    )
    values = pipeline_build.run_environment(env)
    assert values["CONFIG_FILE"] == pipeline_build.DERIVED_CONFIG
    derived = config.load(tmp_path / pipeline_build.DERIVED_CONFIG, "demo")
    assert derived.network.create_vpc is False
    assert derived.network.subnet_ids == SUBNETS
    assert derived.network.security_group_ids == ["sg-0123456789abcdef0"]
    assert derived.pipeline == config.load(source).pipeline  # nothing else changes


def test_outputs_are_the_parameters_of_the_rendered_stacks(tmp_path: Path) -> None:
    from mlops_templates import stacks

    env = _build_env(
        RUN_ID="1624a1d1-3699",
        TRAINING_DATA_URI="s3://data-bucket/training/abalone.csv",
        IMAGE_URI="111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-demo:1624a1d1-3699",
        NOTIFICATION_EMAIL="ops@example.com",
    )
    written = pipeline_build.write_outputs(env, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        [f"{s}.json" for s in stacks.run_stacks(config.load(env["CONFIG_FILE"]))] + [contract.EXECUTION_INPUT]
    )
    cfg = config.load(EXAMPLE_CONFIG, "demo")
    for stack in stacks.run_stacks(cfg):
        content = json.loads((tmp_path / f"{stack}.json").read_text(encoding="utf-8"))
        parameters = stacks.module(stack).build(cfg).parameters
        required = {n for n, p in parameters.items() if p.properties.get("Default") is None}
        overridden = set(contract.TRAIN_OUTPUT_OVERRIDES.get(stack, ()))
        assert set(content["Parameters"]) <= set(parameters)
        assert required - overridden <= set(content["Parameters"]), stack
        assert not overridden & set(content["Parameters"])
        assert content["Tags"] == {"sagemaker:project-name": "demo", "sagemaker:project-id": "p-abc123"}
        assert content["Parameters"].get("KmsKeyArn") == env["KMS_KEY_ARN"]
    prd = json.loads((tmp_path / "deploy-prd.json").read_text(encoding="utf-8"))["Parameters"]
    assert prd["DataCaptureUri"] == "s3://art-bucket/data-capture"
    assert prd["ExecutionRoleArn"] == env["SAGEMAKER_ROLE_ARN"]
    if "NotificationEmail" in stacks.module("deploy-prd").build(cfg).parameters:
        assert prd["NotificationEmail"] == "ops@example.com"
    run = json.loads((tmp_path / contract.EXECUTION_INPUT).read_text(encoding="utf-8"))
    hyperparameters = run.pop("Hyperparameters")
    assert run == {
        "RunId": "1624a1d1-3699",
        "TrainingDataUri": "s3://data-bucket/training/abalone.csv",
        "ImageUri": env["IMAGE_URI"],
    }
    # Strings, as SageMaker takes them; the values of the config file.
    assert set(hyperparameters) == set(cfg.training.hyperparameters)
    for name, value in hyperparameters.items():
        assert isinstance(value, str) and value == str(cfg.training.hyperparameters[name])
        assert float(value) == float(cfg.training.hyperparameters[name])


def test_a_required_parameter_without_value_fails_clearly() -> None:
    from troposphere import Parameter

    parameters = {"Mystery": Parameter("Mystery", Type="String")}
    with pytest.raises(pipeline_build.BuildError, match="parameters.deploy-dev.Mystery"):
        pipeline_build.template_configuration("deploy-dev", parameters, _build_env(), {})
    configured = pipeline_build.template_configuration("deploy-dev", parameters, _build_env(), {"Mystery": "x"})
    assert configured["Parameters"] == {"Mystery": "x"}


def test_env_command_prints_exports_bash_can_evaluate(capsys: pytest.CaptureFixture[str]) -> None:
    env = _build_env(TRAINING_DATA_URI="s3://data-bucket/training/it's here.csv")
    with pytest.raises(pipeline_build.BuildError):
        pipeline_build.run_environment(env)  # spaces are not a valid S3 URI here
    env = _build_env(TRAINING_DATA_URI="s3://data-bucket/training/abalone.csv")
    assert pipeline_build.main(["env"], env) == 0
    exports = capsys.readouterr().out
    proc = subprocess.run(
        ["bash", "-c", exports + 'printf "%s|%s|%s" "$RUN_ID" "$IMAGE_URI" "$TRAINING_DATA_URI"'],
        capture_output=True, text=True, check=True,
    )
    assert proc.stdout == (
        "1624a1d1-3699|111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-demo:"
        "1624a1d1-3699|s3://data-bucket/training/abalone.csv"
    )
    assert pipeline_build.main(["env"], {**env, "DATA_BUCKET": ""}) == 2
    assert "DATA_BUCKET" in capsys.readouterr().err


TRAIN_OUTPUT = {
    "RunId": "r1",
    "ModelDataUrl": "s3://art/runs/r1/model/mlops-demo-r1-train/output/model.tar.gz",
    "ImageUri": "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-demo:r1",
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:111122223333:model-package/mlops-demo-models/1",
    "BaselineStatisticsUri": "s3://art/runs/r1/baseline/statistics.json",
    "BaselineConstraintsUri": "s3://art/runs/r1/baseline/constraints.json",
    "EvaluationUri": "s3://art/runs/r1/evaluation/evaluation.json",
    "Metrics": {"rmse": {"value": 2.1, "standard_deviation": 0.1}},
}


def test_train_output_is_found_by_content_by_the_standalone_script(tmp_path: Path) -> None:
    src = tmp_path / "artifact"
    (src / "nested").mkdir(parents=True)
    (src / "README").write_bytes(b"\xff\xfe not json")
    (src / "nested" / "execution-output").write_text(json.dumps(TRAIN_OUTPUT), encoding="utf-8")
    out = tmp_path / "result"
    script = REPO / pipeline.BUILD_SCRIPT
    # Run as the TrainOutput project does: the file itself, with no package on the path
    # and no site-packages (-S): the standard library and the contract beside it only.
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "train-output", "--src", str(src), "--out", str(out)],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / contract.TRAIN_OUTPUT).read_text(encoding="utf-8")) == TRAIN_OUTPUT


def test_train_output_errors_name_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "output.json").write_text(json.dumps({"ModelDataUrl": "s3://x/m.tar.gz"}), encoding="utf-8")
    with pytest.raises(pipeline_build.BuildError, match="BaselineConstraintsUri"):
        pipeline_build.normalize_train_output(tmp_path, tmp_path / "out" / "train-output.json")
    (tmp_path / "output.json").write_text("[]", encoding="utf-8")
    with pytest.raises(pipeline_build.BuildError, match="files found: output.json"):
        pipeline_build.normalize_train_output(tmp_path, tmp_path / "out" / "train-output.json")
