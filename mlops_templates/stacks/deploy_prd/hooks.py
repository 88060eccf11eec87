"""The API function's deployment machinery: the CodeDeploy PreTraffic and PostTraffic
hooks, and CodeDeploy's own role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from awacs import awslambda as lambda_actions
from awacs import cloudwatch as cloudwatch_actions
from awacs import codedeploy as codedeploy_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sagemaker as sm
from awacs import sns as sns_actions
from awacs.aws import Condition, Statement, StringLike
from troposphere import Join, Ref, Select, Split, iam, serverless, sns

from mlops_templates import iam as iam_policy
from mlops_templates.stacks import common, functions
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.deploy_prd.serving import Endpoint
from mlops_templates.stacks.stack import Stack


@dataclass(frozen=True, eq=False)
class Hooks:
    """What the API function's ``DeploymentPreference`` names."""

    pre_traffic: functions.SamFunction
    post_traffic: functions.SamFunction
    codedeploy_role: iam.Role


def log_group(stack: Stack, inputs: Inputs, logical_id: str, why: str) -> Any:
    """A function's (or the API's) encrypted log group."""
    cfg = stack.config
    return stack.add(
        common.log_group(
            logical_id, cfg, stack.component, inputs.kms_key_arn, cfg.api.log_retention_days
        ),
        why,
    )


def function_role(
    stack: Stack,
    inputs: Inputs,
    logical_id: str,
    role_name: str,
    logs: Any,
    statements: list[Statement],
    why: str,
) -> iam.Role:
    """A function's execution role: its log group, its key, its VPC placement, then
    ``statements``."""
    network = stack.config.network
    return stack.add(
        functions.role(
            logical_id, stack.config, stack.component, role_name, logs, inputs.kms_key_arn,
            statements, network.subnet_ids, network.security_group_ids,
        ),
        why,
    )


def function(
    stack: Stack,
    inputs: Inputs,
    logical_id: str,
    name: str,
    code_dir: str,
    role: iam.Role,
    logs: Any,
    environment: dict[str, Any],
    timeout: int,
    why: str,
    skips: dict[str, str] | None = None,
    **props: Any,
) -> functions.SamFunction:
    """A SAM function of this stack, sized by ``api.memory_mb``."""
    cfg, network = stack.config, stack.config.network
    return stack.add(
        functions.function(
            logical_id, cfg, stack.component, name, code_dir, role, logs, inputs.kms_key_arn,
            environment, timeout, cfg.api.memory_mb, network.subnet_ids,
            network.security_group_ids, skips, **props,
        ),
        why,
    )


def _common_statements(
    inputs: Inputs, topic: sns.Topic, served: Endpoint
) -> tuple[list[Statement], serverless.DeadLetterQueue]:
    """What both hooks may do (report to their deployment group, check the endpoint,
    dead-letter to the topic), and their dead-letter queue."""
    deployment_group_arn = common.arn(
        "codedeploy",
        f"deploymentgroup:${{{n.SAM_CODEDEPLOY_APPLICATION}}}/${{{n.SAM_DEPLOYMENT_GROUP}}}",
    )
    statements = [
        iam_policy.allow(
            [
                codedeploy_actions.PutLifecycleEventHookExecutionStatus,
                codedeploy_actions.GetDeployment,
            ],
            deployment_group_arn,
            sid="ReportToOwnDeploymentGroup",
        ),
        iam_policy.allow(
            [sm.DescribeEndpoint, sm.InvokeEndpoint], served.arn, sid="CheckEndpoint"
        ),
        iam_policy.allow([sns_actions.Publish], Ref(topic), sid="DeadLetters"),
        iam_policy.allow(
            [kms_actions.GenerateDataKey, kms_actions.Decrypt],
            inputs.kms_key_arn,
            sid="EncryptDeadLetters",
        ),
    ]
    # CodeDeploy invokes hooks asynchronously: an invocation that fails before
    # reporting lands on the notification topic instead of vanishing.
    return statements, serverless.DeadLetterQueue(Type="SNS", TargetArn=Ref(topic))


def pre_traffic_hook(
    stack: Stack, inputs: Inputs, topic: sns.Topic, served: Endpoint, names: n.Names
) -> functions.SamFunction:
    """Before any traffic shifts: the endpoint is InService, captures data and answers,
    and the API version being deployed answers a real request."""
    statements, dlq = _common_statements(inputs, topic, served)
    report, check_endpoint, *dead_letters = statements
    logs = log_group(stack, inputs, f"{n.PRE_TRAFFIC_HOOK}LogGroup", "Logs of the PreTraffic hook")
    # The hook tries the API function version being deployed before it gets traffic.
    invoke_new_version = iam_policy.allow(
        [lambda_actions.InvokeFunction],
        functions.function_arns(names.api)[1],
        sid="InvokeNewApiVersion",
    )
    role = function_role(
        stack,
        inputs,
        f"{n.PRE_TRAFFIC_HOOK}Role",
        names.pre_hook,
        logs,
        [report, check_endpoint, invoke_new_version, *dead_letters],
        "PreTraffic hook: report to its deployment group, describe and invoke the endpoint, "
        "invoke the API version being deployed",
    )
    return function(
        stack,
        inputs,
        n.PRE_TRAFFIC_HOOK,
        names.pre_hook,
        "pre_traffic_hook",
        role,
        logs,
        {
            "ENDPOINT_NAME": names.endpoint,
            "SAMPLE_CSV": n.SAMPLE_CSV,
            # SAM's reference to the version its AutoPublishAlias publishes.
            "API_FUNCTION_VERSION": Ref(f"{n.API_FUNCTION}.Version"),
        },
        n.PRE_TRAFFIC_TIMEOUT_SECONDS,
        "CodeDeploy PreTraffic hook: the endpoint is InService, captures data and answers, "
        "and the API version being deployed answers a real request",
        DeadLetterQueue=dlq,
        DependsOn=[served.resource.title],
    )


def _read_capture(inputs: Inputs, names: n.Names) -> list[Statement]:
    """List and read the captured data of this endpoint."""
    capture_path = Select(1, Split("s3://", Ref(inputs.capture_uri)))
    bucket = Select(0, Split("/", capture_path))
    # Fn::Split takes only a literal delimiter, so the key prefix of a URI of any
    # depth cannot be cut out of the Parameter; listing is limited instead to the
    # folders SageMaker names after this endpoint (<prefix>/<endpoint>/<variant>/...).
    endpoint_folders = [f"*/{names.endpoint}/", f"*/{names.endpoint}/*"]
    return [
        iam_policy.allow(
            [s3_actions.ListBucket],
            Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", bucket]),
            conditions=Condition(StringLike("s3:prefix", endpoint_folders)),
            sid="ListCapturedEndpointFolders",
        ),
        iam_policy.allow(
            [s3_actions.GetObject],
            Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", capture_path, "/*"]),
            sid="ReadCapturedData",
        ),
    ]


def post_traffic_hook(
    stack: Stack, inputs: Inputs, topic: sns.Topic, served: Endpoint, names: n.Names
) -> functions.SamFunction:
    """After the shift: captured requests still reach S3."""
    statements, dlq = _common_statements(inputs, topic, served)
    report, check_endpoint, *dead_letters = statements
    logs = log_group(
        stack, inputs, f"{n.POST_TRAFFIC_HOOK}LogGroup", "Logs of the PostTraffic hook"
    )
    role = function_role(
        stack,
        inputs,
        f"{n.POST_TRAFFIC_HOOK}Role",
        names.post_hook,
        logs,
        [report, check_endpoint, *_read_capture(inputs, names), *dead_letters],
        "PostTraffic hook: report to its deployment group, invoke the endpoint, read "
        "the capture prefix",
    )
    return function(
        stack,
        inputs,
        n.POST_TRAFFIC_HOOK,
        names.post_hook,
        "post_traffic_hook",
        role,
        logs,
        {
            "ENDPOINT_NAME": names.endpoint,
            "DATA_CAPTURE_URI": Ref(inputs.capture_uri),
            "MAX_WAIT_SECONDS": str(n.POST_TRAFFIC_MAX_WAIT_SECONDS),
            "SAMPLE_CSV": n.SAMPLE_CSV,
        },
        n.POST_TRAFFIC_TIMEOUT_SECONDS,
        "CodeDeploy PostTraffic hook: captured requests still reach S3 after the shift",
        DeadLetterQueue=dlq,
        DependsOn=[served.resource.title],
    )


def codedeploy_role(stack: Stack, names: n.Names) -> iam.Role:
    """CodeDeploy's service role, in place of SAM's AWSCodeDeployRoleForLambda. (It sends
    no notifications: the API deployment notice rule words them.)"""
    policy = iam_policy.inline_policy(
        "lambda-deployment",
        iam_policy.allow(
            [
                lambda_actions.GetAlias,
                lambda_actions.UpdateAlias,
                lambda_actions.GetProvisionedConcurrencyConfig,
            ],
            functions.function_arns(names.api),
            sid="ShiftApiAlias",
        ),
        iam_policy.allow(
            [lambda_actions.InvokeFunction],
            functions.function_arns(names.pre_hook) + functions.function_arns(names.post_hook),
            sid="RunHooks",
        ),
        # DescribeAlarms has no resource-level permissions (it is a listing action): it
        # needs Resource "*". Read-only.
        iam_policy.allow([cloudwatch_actions.DescribeAlarms], "*", sid="ReadRollbackAlarms"),
    )
    return stack.add(
        iam.Role(
            n.CODEDEPLOY_ROLE,
            RoleName=names.codedeploy_role,
            AssumeRolePolicyDocument=iam_policy.trust("codedeploy.amazonaws.com"),
            Policies=[policy],
            Tags=stack.tags(),
        ),
        "CodeDeploy shifts the API alias and runs the two hooks; scoped to this stack "
        "instead of the AWSCodeDeployRoleForLambda managed policy",
    )


def hooks(
    stack: Stack, inputs: Inputs, topic: sns.Topic, served: Endpoint, names: n.Names
) -> Hooks:
    """The two hooks and the role CodeDeploy runs them with."""
    return Hooks(
        pre_traffic=pre_traffic_hook(stack, inputs, topic, served, names),
        post_traffic=post_traffic_hook(stack, inputs, topic, served, names),
        codedeploy_role=codedeploy_role(stack, names),
    )
