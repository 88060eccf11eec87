"""The production stack: properties that must never regress (KMS everywhere, API auth,
guardrails and rollback alarms, data capture, current runtimes, every Parameter used),
the drift alarm on the metrics Model Monitor really emits (engine model_monitor), clean
cfn-lint output for the config variants, and a SAM expansion that CloudFormation would
accept and that lints clean. The builtin monitor's schedule, state machine, alarms,
notices and dashboard have their own tests (tests/test_monitoring_stack.py).
"""

from __future__ import annotations

import json
import re
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samtranslator.translator.arn_generator import ArnGenerator
from samtranslator.translator.transform import transform

from mlops_templates import config, lint, regions, render
from mlops_templates.stacks import deploy_prd, endpoint

from .template_checks import assert_parameters_constrained_and_used, referenced
from .variants import variant_config

#: Variants beside the example: API key + IP allow list, linear rollout, existing VPC
#: subnets, 50% capture; all-at-once rollout with IAM auth behind an IP allow list;
#: monitoring with SageMaker Model Monitor.
VARIANTS = ["api-key-linear-vpc", "existing-subnets", "model-monitor"]

SUPPORTED_PYTHON_RUNTIMES = {"python3.12", "python3.13"}


def _config(name: str) -> config.Config:
    return variant_config(name)


CASES = ["example", *VARIANTS]


@pytest.fixture(scope="module", params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[config.Config, dict[str, Any]]:
    cfg = _config(request.param)
    return cfg, deploy_prd.build(cfg).to_dict()


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _one(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = _of_type(template, kind).values()
    return resource["Properties"]


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, role in _of_type(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


# -- Never regress ------------------------------------------------------------------------


def test_kms_on_every_volume_capture_topic_log_group_and_function(case) -> None:
    key_param = {"Ref": "KmsKeyArn"}
    cfg, t = case
    builtin = cfg.monitoring.engine == "builtin"
    endpoint_config = _one(t, "AWS::SageMaker::EndpointConfig")
    assert endpoint_config["KmsKeyId"] == key_param
    assert endpoint_config["DataCaptureConfig"]["KmsKeyId"] == key_param
    if builtin:
        machine = _one(t, "AWS::StepFunctions::StateMachine")
        assert machine["EncryptionConfiguration"]["KmsKeyId"] == key_param
        assert machine["DefinitionSubstitutions"]["KmsKeyArn"] == key_param
        assert _one(t, "AWS::Scheduler::Schedule")["KmsKeyArn"] == key_param
    else:
        job = _one(t, "AWS::SageMaker::DataQualityJobDefinition")
        assert job["DataQualityJobOutputConfig"]["KmsKeyId"] == key_param
        assert job["JobResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key_param
    # The project key (its policy admits EventBridge and Logs): the stack creates no key
    # of its own, so its deploying role never needs to manage one.
    assert _of_type(t, "AWS::KMS::Key") == {}
    for props in [r["Properties"] for r in _of_type(t, "AWS::SNS::Topic").values()]:
        assert props["KmsMasterKeyId"] == key_param
    log_groups = _of_type(t, "AWS::Logs::LogGroup")
    # API access logs + the API and hook functions (+ the window function and the monitor)
    assert len(log_groups) == (6 if builtin else 4)
    for group in log_groups.values():
        assert group["Properties"]["KmsKeyId"] == key_param
    functions = _of_type(t, "AWS::Serverless::Function")
    assert len(functions) == (4 if builtin else 3)
    for function in functions.values():
        assert function["Properties"]["KmsKeyArn"] == key_param


def test_api_is_authenticated_and_never_open(case) -> None:
    cfg, t = case
    api = _one(t, "AWS::Serverless::Api")
    auth = api["Auth"]
    if cfg.api.auth == "iam":
        assert auth["DefaultAuthorizer"] == "AWS_IAM"
        assert auth["InvokeRole"] == "NONE"
        assert "ApiKeyRequired" not in auth
    else:
        assert auth["ApiKeyRequired"] is True
        plan = _one(t, "AWS::ApiGateway::UsagePlan")
        assert plan["Quota"] == {"Limit": cfg.api.quota_per_day, "Period": "DAY"}
        assert plan["Throttle"]["RateLimit"] == cfg.api.throttle.rate_limit
        assert _one(t, "AWS::ApiGateway::UsagePlanKey")["KeyId"] == {"Ref": deploy_prd.API_KEY}
    for function in _of_type(t, "AWS::Serverless::Function").values():
        for event in function["Properties"].get("Events", {}).values():
            # No event may override the API's authentication.
            assert "Auth" not in event["Properties"]
    statements = auth.get("ResourcePolicy", {}).get("CustomStatements", [])
    if cfg.api.ip_allow_list:
        deny = [s for s in statements if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {
            "NotIpAddress": {"aws:SourceIp": list(cfg.api.ip_allow_list)}
        }
    allows = [s for s in statements if s["Effect"] == "Allow"]
    # An Allow for everyone exists only for API-key auth, and only behind the IP filter.
    assert not allows or (cfg.api.auth == "api_key" and cfg.api.ip_allow_list)
    assert api["EndpointConfiguration"] == {"Type": "REGIONAL"}


def test_api_is_throttled_traced_and_access_logged(case) -> None:
    cfg, t = case
    api = _one(t, "AWS::Serverless::Api")
    (setting,) = api["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == cfg.api.throttle.rate_limit
    assert setting["ThrottlingBurstLimit"] == cfg.api.throttle.burst_limit
    assert api["TracingEnabled"] is True
    assert api["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": [deploy_prd.API_ACCESS_LOGS, "Arn"]
    }
    json.loads(api["AccessLogSetting"]["Format"])


def test_endpoint_has_blue_green_guardrails_with_rollback_alarms(case) -> None:
    cfg, t = case
    prd = cfg.endpoints.prd
    deployment = t["Resources"][deploy_prd.ENDPOINT]["Properties"]["DeploymentConfig"]
    alarms = {a["AlarmName"]["Ref"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]}
    metrics = {
        t["Resources"][name]["Properties"]["MetricName"]: t["Resources"][name]["Properties"]
        for name in alarms
    }
    assert set(metrics) == {"Invocation5XXErrors", "ModelLatency"}
    assert metrics["Invocation5XXErrors"]["Threshold"] == prd.max_5xx_errors
    assert metrics["ModelLatency"]["Threshold"] == prd.max_model_latency_ms * 1000  # microseconds
    for alarm in metrics.values():
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "EndpointName": f"{cfg.project.prefix}-{cfg.project.name}-prd",
            "VariantName": endpoint.VARIANT_NAME,
        }
    policy = deployment["BlueGreenUpdatePolicy"]
    assert policy["TerminationWaitInSeconds"] == prd.deployment.termination_wait_seconds


def _expected_routing(policy: config.DeploymentPolicy) -> dict[str, Any]:
    routing: dict[str, Any] = {
        "Type": {"canary": "CANARY", "linear": "LINEAR", "all_at_once": "ALL_AT_ONCE"}[policy.type],
        "WaitIntervalInSeconds": policy.wait_interval_seconds,
    }
    size = {"Type": "CAPACITY_PERCENT", "Value": policy.traffic_percent}
    if policy.type == "canary":
        routing["CanarySize"] = size
    elif policy.type == "linear":
        routing["LinearStepSize"] = size
    return routing


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["canary", "linear", "all_at_once"]),
    percent=st.integers(min_value=10, max_value=50),
    wait=st.integers(min_value=0, max_value=3600),
    termination=st.integers(min_value=0, max_value=3600),
    timeout=st.integers(min_value=600, max_value=14400),
)
def test_traffic_routing_matches_the_config(
    kind: str, percent: int, wait: int, termination: int, timeout: int
) -> None:
    cfg = config.parse(
        {
            "endpoints": {
                "prd": {
                    "deployment": {
                        "type": kind,
                        "traffic_percent": percent,
                        "wait_interval_seconds": wait,
                        "termination_wait_seconds": termination,
                        "maximum_execution_timeout_seconds": timeout,
                    }
                }
            }
        }
    )
    t = deploy_prd.build(cfg).to_dict()
    policy = t["Resources"][deploy_prd.ENDPOINT]["Properties"]["DeploymentConfig"][
        "BlueGreenUpdatePolicy"
    ]
    assert policy["TrafficRoutingConfiguration"] == _expected_routing(cfg.endpoints.prd.deployment)
    assert policy["TerminationWaitInSeconds"] == termination
    assert policy["MaximumExecutionTimeoutInSeconds"] == timeout


def test_api_function_is_canary_deployed_with_hooks_and_rollback_alarms(case) -> None:
    cfg, t = case
    function = t["Resources"][deploy_prd.API_FUNCTION]["Properties"]
    assert function["AutoPublishAlias"] == deploy_prd.ALIAS
    preference = function["DeploymentPreference"]
    assert preference["Type"] == cfg.api.deployment_preference
    assert preference["Hooks"] == {
        "PreTraffic": {"Ref": deploy_prd.PRE_TRAFFIC_HOOK},
        "PostTraffic": {"Ref": deploy_prd.POST_TRAFFIC_HOOK},
    }
    assert preference["Role"] == {"Fn::GetAtt": [deploy_prd.CODEDEPLOY_ROLE, "Arn"]}
    alarms = [t["Resources"][a["Ref"]]["Properties"] for a in preference["Alarms"]]
    watched = {(a["Namespace"], a["MetricName"]) for a in alarms}
    assert watched == {("AWS/Lambda", "Errors"), ("AWS/ApiGateway", "5XXError")}
    new_version = [
        a for a in alarms if any(d["Name"] == "ExecutedVersion" for d in a["Dimensions"])
    ]
    assert len(new_version) == 1
    # CodeDeploy's own trigger messages are raw JSON: the API deployment notice rule words
    # the outcome instead.
    assert "TriggerConfigurations" not in preference
    rule = t["Resources"][deploy_prd.notices.n.API_DEPLOYMENT_NOTICE]["Properties"]
    assert rule["EventPattern"]["detail"]["application"] == [
        {"Ref": deploy_prd.SAM_CODEDEPLOY_APPLICATION}
    ]


def test_functions_use_current_runtime_and_contract_environment(case) -> None:
    cfg, t = case
    functions = _of_type(t, "AWS::Serverless::Function")
    for logical_id, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] in SUPPORTED_PYTHON_RUNTIMES, logical_id
        assert props["Handler"] == "app.handler"
        assert props["Tracing"] == "Active"
        assert re.fullmatch(r"\.\./lambdas/[a-z_]+/", props["CodeUri"])
        assert ("VpcConfig" in props) == bool(cfg.network.subnet_ids)
    env = {k: f["Properties"]["Environment"]["Variables"] for k, f in functions.items()}
    endpoint_name = f"{cfg.project.prefix}-{cfg.project.name}-prd"
    assert set(env[deploy_prd.API_FUNCTION]) == {"ENDPOINT_NAME"}
    if cfg.monitoring.engine == "builtin":
        window = env[deploy_prd.notices.n.MONITOR_WINDOW]
        assert window["ENDPOINT_NAME"] == endpoint_name
        assert window["CAPTURE_URI"] == {"Ref": deploy_prd.DATA_CAPTURE_URI}
        assert window["GROUND_TRUTH_URI"] == {"Ref": "GroundTruthUri"}
    assert env[deploy_prd.PRE_TRAFFIC_HOOK] == {
        "ENDPOINT_NAME": endpoint_name,
        "SAMPLE_CSV": deploy_prd.SAMPLE_CSV,
        # The version being deployed: the hook invokes it before it gets traffic.
        "API_FUNCTION_VERSION": {"Ref": f"{deploy_prd.API_FUNCTION}.Version"},
    }
    post = env[deploy_prd.POST_TRAFFIC_HOOK]
    assert post["DATA_CAPTURE_URI"] == {"Ref": deploy_prd.DATA_CAPTURE_URI}
    assert (
        int(post["MAX_WAIT_SECONDS"])
        < functions[deploy_prd.POST_TRAFFIC_HOOK]["Properties"]["Timeout"]
    )
    assert functions[deploy_prd.API_FUNCTION]["Properties"]["CodeUri"] == "../lambdas/api/"
    assert (
        functions[deploy_prd.PRE_TRAFFIC_HOOK]["Properties"]["CodeUri"]
        == "../lambdas/pre_traffic_hook/"
    )
    assert (
        functions[deploy_prd.POST_TRAFFIC_HOOK]["Properties"]["CodeUri"]
        == "../lambdas/post_traffic_hook/"
    )


def test_data_capture_is_on(case) -> None:
    cfg, t = case
    capture = _one(t, "AWS::SageMaker::EndpointConfig")["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert (
        capture["InitialSamplingPercentage"] == cfg.endpoints.prd.data_capture_sampling_percentage
    )
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    assert capture["DestinationS3Uri"] == {"Ref": deploy_prd.DATA_CAPTURE_URI}


def test_every_parameter_is_constrained_and_used(case) -> None:
    cfg, t = case
    params = t["Parameters"]
    assert {
        "ImageUri",
        "ModelDataUrl",
        "ExecutionRoleArn",
        "KmsKeyArn",
        "DataCaptureUri",
        "BaselineStatisticsUri",
        "BaselineConstraintsUri",
        "MonitoringOutputUri",
    } <= set(params)
    assert ("GroundTruthUri" in params) is (cfg.monitoring.engine == "builtin")
    assert_parameters_constrained_and_used(t)
    used = referenced(t["Resources"]) | referenced(t.get("Conditions", {}))
    assert set(t.get("Conditions", {})) <= used


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("s3://my-bucket/data-capture", True),
        ("s3://my-bucket/projects/abalone/capture", True),
        ("s3://my-bucket/data-capture/", False),
        ("s3://my-bucket", False),
        ("s3://My_Bucket/capture", False),
    ],
)
def test_capture_uri_pattern(value: str, ok: bool) -> None:
    assert bool(re.fullmatch(endpoint.S3_PREFIX_URI_PATTERN, value)) is ok


def test_autoscaling_uses_the_service_linked_role(case) -> None:
    cfg, t = case
    target = _one(t, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert "RoleARN" not in target
    assert (target["MinCapacity"], target["MaxCapacity"]) == (
        cfg.endpoints.prd.autoscaling.min_capacity,
        cfg.endpoints.prd.autoscaling.max_capacity,
    )
    tracking = _one(t, "AWS::ApplicationAutoScaling::ScalingPolicy")[
        "TargetTrackingScalingPolicyConfiguration"
    ]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == cfg.endpoints.prd.autoscaling.target_invocations_per_instance


def test_model_monitor_runs_the_regional_analyzer_on_the_schedule(case) -> None:
    cfg, t = case
    if cfg.monitoring.engine == "builtin":
        # The project's own monitor, which every account can run: no Model Monitor at all.
        assert not _of_type(t, "AWS::SageMaker::DataQualityJobDefinition")
        assert not _of_type(t, "AWS::SageMaker::MonitoringSchedule")
        assert "SageMakerImages" not in t.get("Mappings", {})
        return
    job = _one(t, "AWS::SageMaker::DataQualityJobDefinition")
    app = job["DataQualityAppSpecification"]
    assert app["ImageUri"] == {
        "Fn::FindInMap": ["SageMakerImages", {"Ref": "AWS::Region"}, "ModelMonitor"]
    }
    assert app["Environment"] == {"publish_cloudwatch_metrics": "Enabled"}
    mapping = t["Mappings"]["SageMakerImages"]
    assert mapping[cfg.project.region]["ModelMonitor"] == regions.image_uri(
        "model-monitor", cfg.project.region
    )
    baseline = job["DataQualityBaselineConfig"]
    assert baseline["StatisticsResource"]["S3Uri"] == {"Ref": deploy_prd.BASELINE_STATISTICS_URI}
    assert baseline["ConstraintsResource"]["S3Uri"] == {"Ref": deploy_prd.BASELINE_CONSTRAINTS_URI}
    schedule = _one(t, "AWS::SageMaker::MonitoringSchedule")
    assert (
        schedule["MonitoringScheduleName"]
        == f"{cfg.project.prefix}-{cfg.project.name}-prd-data-quality"
    )
    assert schedule["MonitoringScheduleConfig"]["MonitoringType"] == "DataQuality"
    assert (
        schedule["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"]
        == cfg.monitoring.schedule_expression
    )


def test_drift_alarm_counts_drifted_features_from_model_monitor_metrics(case) -> None:
    cfg, t = case
    base = f"{cfg.project.prefix}-{cfg.project.name}"
    alarm = t["Resources"][deploy_prd.DRIFT_ALARM]["Properties"]
    assert alarm["AlarmName"] == f"{base}-prd-drift"
    assert alarm["TreatMissingData"] == "notBreaching"
    # No raw alarm JSON to subscribers: the drift notice rule words it.
    assert "AlarmActions" not in alarm and "OKActions" not in alarm
    assert alarm["Threshold"] == cfg.monitoring.drift_violations_threshold
    assert t["Outputs"]["DriftAlarmName"]["Value"] == {"Ref": deploy_prd.DRIFT_ALARM}
    if cfg.monitoring.engine == "builtin":
        return  # a plain alarm on FeaturesDrifted: tests/test_monitoring_stack.py
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    stats = [q for q in alarm["Metrics"] if "MetricStat" in q]
    (expression,) = [q for q in alarm["Metrics"] if "Expression" in q]
    assert expression["ReturnData"] is True
    assert all(q["ReturnData"] is False for q in stats)
    assert len(stats) <= 10  # CloudWatch's limit of metrics per alarm
    names = set()
    for query in stats:
        metric = query["MetricStat"]["Metric"]
        assert metric["Namespace"] == "aws/sagemaker/Endpoints/data-metrics"
        assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {
            "Endpoint": f"{base}-prd",
            "MonitoringSchedule": f"{base}-prd-data-quality",
        }
        assert (
            query["MetricStat"]["Period"]
            == deploy_prd.SCHEDULE_PERIOD_SECONDS[cfg.monitoring.schedule_expression]
        )
        names.add(metric["MetricName"])
        assert (
            f"IF(FILL({query['Id']}, 0) > {cfg.monitoring.drift_distance_threshold:g}, 1, 0)"
            in (expression["Expression"])
        )
    assert names == {f"feature_baseline_drift_{f}" for f in cfg.monitoring.drift_features}
    assert t["Outputs"]["DriftAlarmName"]["Value"] == {"Ref": deploy_prd.DRIFT_ALARM}


def test_outputs_of_the_contract(case) -> None:
    cfg, t = case
    expected = {"EndpointName", "ApiUrl", "NotificationTopicArn", "DriftAlarmName", "DashboardName"}
    if cfg.api.auth == "api_key":
        expected.add("ApiKeyId")
    if cfg.monitoring.engine == "builtin":
        expected |= {"QualityAlarmName", "MonitorStateMachineArn"}
    assert set(t["Outputs"]) == expected
    assert t["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"].endswith(
        f"/{cfg.api.stage_name}{deploy_prd.API_PATH}"
    )


def test_iam_is_scoped(case) -> None:
    cfg, t = case
    allowed_wildcards = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "cloudwatch:DescribeAlarms",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        # Step Functions' log delivery (no resource-level permissions).
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
    for logical_id, statement in _statements(t):
        actions = set(statement["Action"])
        assert not any(a.endswith("*") for a in actions), (logical_id, actions)
        if "*" in statement["Resource"]:
            if actions == {"cloudwatch:PutMetricData"}:
                # No resource-level permissions: pinned to the project's namespace.
                assert statement["Condition"] == {
                    "StringEquals": {"cloudwatch:namespace": f"{cfg.project.prefix}/{cfg.project.name}"}
                }
                continue
            assert actions <= allowed_wildcards, (logical_id, actions)
    by_sid = {(role, s.get("Sid")): s for role, s in _statements(t)}
    for hook in (deploy_prd.PRE_TRAFFIC_HOOK, deploy_prd.POST_TRAFFIC_HOOK):
        report = by_sid[(f"{hook}Role", "ReportToOwnDeploymentGroup")]
        assert report["Resource"] == [
            {
                "Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:"
                "deploymentgroup:${ServerlessDeploymentApplication}/${ApiFunctionDeploymentGroup}"
            }
        ]
        assert by_sid[(f"{hook}Role", "CheckEndpoint")]["Resource"] == [
            {"Ref": deploy_prd.ENDPOINT}
        ]
    hooks = by_sid[(deploy_prd.CODEDEPLOY_ROLE, "RunHooks")]
    assert hooks["Action"] == ["lambda:InvokeFunction"]
    base = f"{cfg.project.prefix}-{cfg.project.name}"
    invoked = {r["Fn::Sub"].split(":function:")[1] for r in hooks["Resource"]}
    assert invoked == {
        f"{base}-prd-pre-traffic",
        f"{base}-prd-pre-traffic:*",
        f"{base}-prd-post-traffic",
        f"{base}-prd-post-traffic:*",
    }
    api_role = [s for role, s in _statements(t) if role == f"{deploy_prd.API_FUNCTION}Role"]
    endpoint_statements = [
        s for s in api_role if any(a.startswith("sagemaker:") for a in s["Action"])
    ]
    assert endpoint_statements == [by_sid[(f"{deploy_prd.API_FUNCTION}Role", "InvokeEndpoint")]]
    assert endpoint_statements[0]["Action"] == ["sagemaker:InvokeEndpoint"]


# -- cfn-lint and the SAM expansion --------------------------------------------------------


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_has_no_cfn_lint_findings(name: str) -> None:
    cfg = _config(name)
    text = render.to_yaml(deploy_prd.build(cfg))
    findings = lint.cfn_lint_text(
        text, f"{name}/deploy-prd.yaml", ["us-east-1", cfg.project.region]
    )
    assert findings == [], "\n".join(map(str, findings))


class _NoManagedPolicies:
    """Managed-policy loader for offline translation: every role here is explicit."""

    def load(self) -> dict[str, str]:
        return {}


def _expand(cfg: config.Config) -> dict[str, Any]:
    """The template as CloudFormation's SAM transform would expand it, offline."""
    template = json.loads(json.dumps(deploy_prd.build(cfg).to_dict()))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # What `aws cloudformation package` puts there.
            resource["Properties"]["CodeUri"] = "s3://artifacts/function.zip"
    # The hosted transform fills in the deploying region's partition; offline it stays
    # the pseudo parameter, so the expansion is as partition-independent as the source.
    with mock.patch.object(
        ArnGenerator,
        "get_partition_name",
        classmethod(lambda cls, region=None: "${AWS::Partition}"),
    ):
        # passthrough_metadata: generated resources inherit their SAM resource's
        # Metadata (its Context and checkov reasons), as in a deployed stack.
        return transform(template, {}, _NoManagedPolicies(), passthrough_metadata=True)


@pytest.mark.parametrize("name", CASES)
def test_sam_expansion_is_complete_and_lints_clean(name: str) -> None:
    cfg = _config(name)
    expanded = _expand(cfg)
    resources = expanded["Resources"]
    kinds = {r["Type"] for r in resources.values()}
    assert not any(kind.startswith("AWS::Serverless::") for kind in kinds)
    assert {
        "AWS::Lambda::Alias",
        "AWS::Lambda::Version",
        "AWS::CodeDeploy::DeploymentGroup",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Stage",
    } <= kinds
    # SAM's own CodeDeploy service role is not created: ours replaces it.
    assert "CodeDeployServiceRole" not in resources
    group = resources[deploy_prd.SAM_DEPLOYMENT_GROUP]["Properties"]
    assert group["ServiceRoleArn"] == {"Fn::GetAtt": [deploy_prd.CODEDEPLOY_ROLE, "Arn"]}
    assert len(group["AlarmConfiguration"]["Alarms"]) == 3
    assert (
        group["DeploymentConfigName"]["Fn::Sub"][1]["ConfigName"] == cfg.api.deployment_preference
    )
    # Every method of the generated API is authenticated.
    body = _one(expanded, "AWS::ApiGateway::RestApi")["Body"]
    for path, methods in body["paths"].items():
        for method, spec in methods.items():
            schemes = {name for requirement in spec["security"] for name in requirement}
            expected = {"AWS_IAM"} if cfg.api.auth == "iam" else {"api_key"}
            assert schemes == expected, (path, method)
    # SAM's deployment-preference resources have no SAM resource to inherit Metadata
    # from; the Context rule counts them as incidental (like CDK framework resources).
    findings = lint.cfn_lint_text(
        json.dumps(expanded, indent=1),
        f"{name}/deploy-prd.expanded.json",
        sorted({"us-east-1", cfg.project.region}),
        configure_rules={
            "I4010": {
                "additional_incidental_patterns": [
                    "^ServerlessDeploymentApplication$",
                    f"^{deploy_prd.SAM_DEPLOYMENT_GROUP}$",
                ]
            }
        },
    )
    assert findings == [], "\n".join(map(str, findings))


def test_the_resource_policy_is_exactly_the_ip_filter_and_for_api_keys_one_allow(case) -> None:
    """Written out: a Deny for every address outside ``api.ip_allow_list`` on every method
    and, only with API-key auth (no IAM authorisation to grant access), an Allow on the same
    methods (API Gateway developer guide, "API Gateway resource policy examples")."""
    cfg, t = case
    statements = _one(t, "AWS::Serverless::Api")["Auth"].get("ResourcePolicy", {}).get("CustomStatements", [])
    deny = {
        "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": list(cfg.api.ip_allow_list)}},
    }
    allow = {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"}
    if not cfg.api.ip_allow_list:
        assert statements == []
    elif cfg.api.auth == "api_key":
        assert statements == [allow, deny]
    else:
        assert statements == [deny]
