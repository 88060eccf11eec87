"""The teardown custom resource: deleting the project first deletes its per-run stacks.

Endpoints bill by the hour, and the per-run stacks are not part of the pipeline stack;
so a Lambda function, run as a custom resource, deletes them (production and dev first,
then the workflow) with the deploy role. The resource depends on the deploy role and its
policies, so CloudFormation deletes it (and runs the function) while the role still
exists. The code is inline: Service Catalog launches the product template as it is.
"""

from __future__ import annotations

from typing import Any

from awacs import awslambda as lambda_actions
from awacs import cloudformation as cfn
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import xray
from troposphere import GetAtt, Ref, Sub, Tags, awslambda, iam, kms, logs
from troposphere.cloudformation import CustomResource

from mlops_templates import iam as iamdoc
from mlops_templates.inline import inline_code
from mlops_templates.stacks import common, functions, run_stacks
from mlops_templates.stacks.pipeline.deploy_role import DeployRole
from mlops_templates.stacks.pipeline.names import PROJECT_NAME, ProjectNames
from mlops_templates.stacks.pipeline.policies import service_role
from mlops_templates.stacks.pipeline.stack import Stack

TEARDOWN_LOG_GROUP = "TeardownLogGroup"
TEARDOWN_ROLE = "TeardownRole"
TEARDOWN_FUNCTION = "TeardownFunction"
TEARDOWN = "RunStacksTeardown"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    TEARDOWN_LOG_GROUP: "Encrypted logs of the teardown function",
    TEARDOWN_ROLE: "Lets the teardown function delete the per-run stacks with the deploy role",
    TEARDOWN_FUNCTION: "Deletes the per-run stacks when the project is deleted",
    TEARDOWN: "Deleting the project first deletes its per-run stacks (endpoints bill by the "
    "hour), before the role that may delete them goes",
}


class TeardownResource(CustomResource):
    """``Custom::RunStacksTeardown``: the per-run stacks' teardown (see :func:`create`)."""

    resource_type = "Custom::RunStacksTeardown"
    props = {  # noqa: RUF012 - troposphere's class-level property table
        "ServiceToken": (str, True),
        "ServiceTimeout": (int, False),
    }


def create(stack: Stack, project_key: kms.Key, deploy: DeployRole) -> None:
    """Add the teardown function, its log group and role, and the custom resource."""
    names = stack.names
    log_group = _log_group(stack, project_key)
    stacks = {name: names.text(name) for name in run_stacks(stack.config)}
    function_name = names.text("teardown")
    role = stack.add(
        teardown_role(
            TEARDOWN_ROLE,
            names,
            [common.arn("cloudformation", f"stack/{name}/*") for name in stacks.values()],
            GetAtt(deploy.role, "Arn"),
            GetAtt(log_group, "Arn"),
            GetAtt(project_key, "Arn"),
            common.arn("lambda", f"function:{function_name}"),
            stack.tags("pipeline"),
        )
    )
    # The endpoint and batch stacks together (newest first), then the workflow stack.
    first = ",".join(stacks[name] for name in reversed(list(stacks)) if name != "workflow")
    waves = f"{first};{stacks['workflow']}"
    function = stack.add(_function(stack, function_name, waves, project_key, log_group, role, deploy))
    stack.add(
        TeardownResource(
            TEARDOWN,
            ServiceToken=GetAtt(function, "Arn"),
            # Deleting the endpoint stacks can take longer than one invocation.
            ServiceTimeout=3600,
            DependsOn=deploy.titles,
        )
    )


def _log_group(stack: Stack, project_key: kms.Key) -> logs.LogGroup:
    cfg = stack.config
    group = stack.add(
        common.log_group(
            TEARDOWN_LOG_GROUP,
            cfg,
            "pipeline",
            project_key,
            cfg.pipeline.log_retention_days,
            name=Sub(
                f"/{stack.names.prefix}/${{{PROJECT_NAME}}}/teardown-${{Suffix}}",
                Suffix=common.stack_suffix(),
            ),
        )
    )
    group.Tags = stack.tags("pipeline")
    return group


def _function(
    stack: Stack,
    function_name: str,
    waves: str,
    project_key: kms.Key,
    log_group: logs.LogGroup,
    role: iam.Role,
    deploy: DeployRole,
) -> awslambda.Function:
    function = awslambda.Function(
        TEARDOWN_FUNCTION,
        FunctionName=Sub(function_name),
        Description=Sub(f"Deletes the per-run stacks of {stack.names.base} when the project is deleted"),
        Code=awslambda.Code(ZipFile=inline_code("teardown")),
        Handler="index.handler",
        Runtime=functions.PYTHON_RUNTIME,
        Architectures=["arm64"],
        MemorySize=128,
        # Deleting an endpoint stack takes minutes; the function continues in a new
        # invocation when this runs out.
        Timeout=900,
        Role=GetAtt(role, "Arn"),
        Environment=awslambda.Environment(
            Variables={"STACK_WAVES": Sub(waves), "ROLE_ARN": GetAtt(deploy.role, "Arn")}
        ),
        KmsKeyArn=GetAtt(project_key, "Arn"),
        TracingConfig=awslambda.TracingConfig(Mode="Active"),
        LoggingConfig=awslambda.LoggingConfig(LogGroup=Ref(log_group)),
        Tags=stack.tags("pipeline"),
    )
    common.skip_checkov(
        function,
        {
            **functions.COMMON_SKIPS,
            **functions.NO_VPC_SKIP,
            "CKV_AWS_116": (
                "CloudFormation invokes the function as a custom resource and the function "
                "reports every outcome to CloudFormation itself; a dead-letter queue only "
                "receives asynchronous events that failed"
            ),
        },
    )
    return function


def teardown_role(
    logical_id: str,
    names: ProjectNames,
    stack_arns: list[Any],
    deploy_role_arn: Any,
    log_group_arn: Any,
    key_arn: Any,
    function_arn: Any,
    tags: Tags,
) -> iam.Role:
    """The teardown function's role: delete the per-run stacks with the deploy role."""
    statements = [
        iamdoc.allow(
            [cfn.DeleteStack, cfn.DescribeStacks, cfn.DescribeStackEvents],
            stack_arns,
            sid="DeleteRunStacks",
        ),
        iamdoc.pass_role(deploy_role_arn, "cloudformation.amazonaws.com", sid="DeleteWithDeployRole"),
        # A deletion that outlasts one invocation continues in the next.
        iamdoc.allow([lambda_actions.InvokeFunction], function_arn, sid="ContinueLater"),
        iamdoc.allow([logs_actions.CreateLogStream, logs_actions.PutLogEvents], log_group_arn, sid="WriteOwnLogs"),
        iamdoc.allow([kms_actions.Decrypt], key_arn, sid="DecryptEnvironment"),
        # X-Ray has no resource-level permissions.
        iamdoc.allow([xray.PutTraceSegments, xray.PutTelemetryRecords], "*", sid="Tracing"),
    ]
    return service_role(
        logical_id, names, "teardown", "lambda.amazonaws.com", statements, tags,
        "Deletes the project's per-run stacks when the project is deleted",
    )
