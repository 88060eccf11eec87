"""Lambda functions of the stacks, as SAM functions: one shape for every function.

Each function's code is a folder under ``lambdas/`` (``CodeUri`` is relative to
``templates/``, where the rendered file lives, so ``aws cloudformation package`` finds
``../lambdas/<folder>/``); it runs on Graviton with the current Python runtime, traces
with X-Ray, logs to its own KMS-encrypted log group and runs as its own role.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from awacs import ec2 as ec2_actions
from awacs import kms as kms_actions
from awacs import logs as logs_actions
from awacs import xray as xray_actions
from awacs.aws import Statement
from troposphere import GetAtt, PropsDictType, Ref, Sub, iam, serverless

from mlops_templates import iam as iam_policy
from mlops_templates.config import Config
from mlops_templates.stacks import common

PYTHON_RUNTIME = "python3.13"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


class SamFunction(serverless.Function):
    """SAM function that also tags what SAM generates for it (``PropagateTags``)."""

    props: ClassVar[PropsDictType] = {
        **serverless.Function.props,
        "PropagateTags": (bool, False),
    }


def tag_dict(config: Config, component: str) -> dict[str, str]:
    """The project's tags as the mapping SAM resources take."""
    return {tag["Key"]: tag["Value"] for tag in common.tags(config, component).to_dict()}


def function_arns(name: str) -> list[Sub]:
    """The function and its versions and aliases (``<arn>:<qualifier>``)."""
    return [common.arn("lambda", f"function:{name}"), common.arn("lambda", f"function:{name}:*")]


def role(
    logical_id: str,
    config: Config,
    component: str,
    role_name: Any,
    log_group: Any,
    kms_key_arn: Any,
    statements: Sequence[Statement],
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
) -> iam.Role:
    """A function's execution role: its own log group, X-Ray, its environment's key, the
    network interfaces of its VPC placement, then ``statements``."""
    base: list[Statement] = [
        iam_policy.allow(
            [logs_actions.CreateLogStream, logs_actions.PutLogEvents],
            GetAtt(log_group, "Arn"),
            sid="WriteOwnLogs",
        ),
        # X-Ray has no resource-level permissions: its actions need Resource "*".
        iam_policy.allow(
            [xray_actions.PutTraceSegments, xray_actions.PutTelemetryRecords], "*", sid="Tracing"
        ),
        # The function's environment variables are encrypted with this key.
        iam_policy.allow([kms_actions.Decrypt], kms_key_arn, sid="DecryptEnvironment"),
    ]
    if subnet_ids:
        interfaces = common.arn("ec2", "network-interface/*")
        base += [
            # Lambda creates the function's network interfaces with its role, in the
            # configured subnets and security groups only.
            iam_policy.allow(
                [ec2_actions.CreateNetworkInterface],
                [interfaces]
                + [common.arn("ec2", f"subnet/{subnet}") for subnet in subnet_ids]
                + [common.arn("ec2", f"security-group/{sg}") for sg in security_group_ids],
                sid="CreateVpcInterfaces",
            ),
            iam_policy.allow(
                [
                    ec2_actions.DeleteNetworkInterface,
                    ec2_actions.AssignPrivateIpAddresses,
                    ec2_actions.UnassignPrivateIpAddresses,
                ],
                interfaces,
                sid="ManageVpcInterfaces",
            ),
            # EC2 Describe actions have no resource-level permissions: Resource "*".
            iam_policy.allow(
                [ec2_actions.DescribeNetworkInterfaces, ec2_actions.DescribeSubnets],
                "*",
                sid="DescribeVpc",
            ),
        ]
    return iam.Role(
        logical_id,
        RoleName=role_name,
        AssumeRolePolicyDocument=iam_policy.trust("lambda.amazonaws.com"),
        Policies=[iam_policy.inline_policy("function", *base, *statements)],
        Tags=common.tags(config, component),
    )


#: checkov suppressions every function carries, with their reasons.
COMMON_SKIPS = {
    "CKV_AWS_115": (
        "Reserved concurrency is not set on purpose: it is carved out of the account "
        "pool and fails in accounts with the default low concurrency limit; the API "
        "stage throttle bounds the API function and the other functions run once per "
        "deployment or stack operation"
    ),
    "CKV_AWS_272": (
        "Code signing is not configured: the code is packaged by the project's own "
        "pipeline from the reviewed repository, with no signing profile to verify"
    ),
}
NO_VPC_SKIP = {
    "CKV_AWS_117": (
        "No VPC is configured (network.subnet_ids is empty); the function calls only "
        "AWS APIs, over TLS and signed with its role"
    )
}


def function(
    logical_id: str,
    config: Config,
    component: str,
    name: Any,
    code_dir: str,
    execution_role: iam.Role,
    log_group: Any,
    kms_key_arn: Any,
    environment: dict[str, Any],
    timeout: int,
    memory_mb: int = 256,
    subnet_ids: Sequence[str] = (),
    security_group_ids: Sequence[str] = (),
    skips: dict[str, str] | None = None,
    **props: Any,
) -> SamFunction:
    """A SAM function running ``lambdas/<code_dir>/app.handler``."""
    spec: dict[str, Any] = {
        "FunctionName": name,
        "CodeUri": f"../lambdas/{code_dir}/",
        "Handler": "app.handler",
        "Runtime": PYTHON_RUNTIME,
        # Pure Python (standard library and boto3): Graviton is cheaper for the same code.
        "Architectures": ["arm64"],
        "MemorySize": memory_mb,
        "Timeout": timeout,
        "Role": GetAtt(execution_role, "Arn"),
    }
    if environment:
        spec["Environment"] = serverless.Environment(Variables=environment)
    spec.update(
        KmsKeyArn=kms_key_arn,
        Tracing="Active",
        LoggingConfig=serverless.LoggingConfig(LogGroup=Ref(log_group)),
        Tags=tag_dict(config, component),
        PropagateTags=True,
        **props,
    )
    resource = SamFunction(logical_id, **spec)
    if subnet_ids:
        resource.VpcConfig = serverless.VPCConfig(
            SubnetIds=list(subnet_ids), SecurityGroupIds=list(security_group_ids)
        )
    reasons = dict(COMMON_SKIPS)
    if not subnet_ids:
        reasons.update(NO_VPC_SKIP)
    common.skip_checkov(resource, {**reasons, **(skips or {})})
    return resource
