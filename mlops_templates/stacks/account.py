"""The account stack: settings every project needs once per account and region.

API Gateway writes REST APIs' access and execution logs with one role per account and
region, which the production API's access logging requires. This stack creates that
role and points API Gateway at it through a custom resource whose function
(``lambdas/account_settings``) retries while IAM propagates the new role: the same
setting through ``AWS::ApiGateway::Account`` fails when API Gateway checks the role
before IAM has propagated it (a known race; see the function's docstring).

Deployed by ``make deploy`` (before the pipeline) and ``make publish`` (before the
studio stack), so the API works with and without SageMaker Studio. It is named
``<prefix>-account`` and shared by every project of the prefix.

Resources: a KMS key and the function's encrypted log group; the API Gateway role
(``DeletionPolicy: Retain``: the account setting keeps pointing at it after the stack is
deleted, and other APIs rely on it); the function, its role, and the custom resource.
"""

from __future__ import annotations

from awacs import apigateway as apigw
from troposphere import GetAtt, Output, Template, iam, kms, logs
from troposphere.cloudformation import CustomResource

from mlops_templates import iam as iam_policy
from mlops_templates import naming
from mlops_templates.config import Config
from mlops_templates.stacks import common, functions
from mlops_templates.stacks.stack import Stack

COMPONENT = "account"

KEY = "AccountKey"
LOG_GROUP = "AccountSettingsLogGroup"
CLOUDWATCH_ROLE = "ApiGatewayCloudWatchRole"
FUNCTION_ROLE = "AccountSettingsFunctionRole"
FUNCTION = "AccountSettingsFunction"
SETTINGS = "ApiGatewayAccountSettings"
SETTINGS_TYPE = "Custom::ApiGatewayAccountSettings"

#: The function retries IAM propagation for most of this, then reports.
FUNCTION_TIMEOUT_SECONDS = 600
#: How long CloudFormation waits for the custom resource's answer (its default is an hour).
SERVICE_TIMEOUT_SECONDS = FUNCTION_TIMEOUT_SECONDS + 60
PUSH_TO_CLOUDWATCH_LOGS = "policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"


def enabled(config: Config) -> bool:
    """Whether the stack is rendered and deployed (it has nothing else to set today)."""
    return config.account.api_gateway_logging_role


class _Settings(CustomResource):
    resource_type = SETTINGS_TYPE
    props = {  # noqa: RUF012 - troposphere's class-level property table
        "ServiceToken": (str, True),
        "ServiceTimeout": (int, False),
        "CloudWatchRoleArn": (str, True),
    }


def logs_key_and_group(stack: Stack) -> tuple[kms.Key, logs.LogGroup]:
    """The setup function's key and log group, removed with the stack: only the
    function's own logs depend on them."""
    config = stack.config
    key = common.kms_key(KEY, config, COMPONENT, "Encrypts the account-settings function's logs")
    key.KeyPolicy.Statement.append(common.logs_key_statement("LogsEncryptThisAccountsLogGroups"))
    key.DeletionPolicy = key.UpdateReplacePolicy = "Delete"
    log_group = common.log_group(LOG_GROUP, config, COMPONENT, key, 365)
    log_group.DeletionPolicy = log_group.UpdateReplacePolicy = "Delete"
    return (
        stack.add(key, "Customer-managed key of the setup function's logs"),
        stack.add(log_group, "Encrypted logs of the setup function"),
    )


def cloudwatch_role(stack: Stack) -> iam.Role:
    """The role API Gateway writes logs with; kept, since the account setting names it."""
    return stack.add(
        iam.Role(
            CLOUDWATCH_ROLE,
            Description="API Gateway pushes access and execution logs to CloudWatch Logs",
            AssumeRolePolicyDocument=iam_policy.trust("apigateway.amazonaws.com"),
            ManagedPolicyArns=[
                common.arn("iam", PUSH_TO_CLOUDWATCH_LOGS, region=False, account="aws")
            ],
            Tags=stack.tags(),
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
        ),
        "API Gateway writes every REST API's access and execution logs with this role",
    )


def settings_function(
    stack: Stack, key: kms.Key, log_group: logs.LogGroup, logs_role: iam.Role
) -> functions.SamFunction:
    """The custom resource's function and its role."""
    config = stack.config
    name = naming.org_name(config, "account-settings")
    function_role = functions.role(
        FUNCTION_ROLE,
        config,
        COMPONENT,
        name,
        log_group,
        GetAtt(key, "Arn"),
        [
            iam_policy.allow(
                [apigw.GET, apigw.PATCH],
                common.arn("apigateway", "/account", account=False),
                sid="AccountSettings",
            ),
            # UpdateAccount passes the role to API Gateway.
            iam_policy.pass_role(
                GetAtt(logs_role, "Arn"), "apigateway.amazonaws.com", sid="PassLogsRole"
            ),
        ],
    )
    stack.add(function_role, "The setup function reads and sets API Gateway's account settings")
    function = functions.function(
        FUNCTION,
        config,
        COMPONENT,
        name,
        "account_settings",
        function_role,
        log_group,
        GetAtt(key, "Arn"),
        {},
        FUNCTION_TIMEOUT_SECONDS,
        memory_mb=128,
        skips={
            "CKV_AWS_116": (
                "CloudFormation invokes the function synchronously as a custom resource "
                "and the function reports every outcome to CloudFormation itself; a "
                "dead-letter queue only receives asynchronous events"
            )
        },
    )
    return stack.add(
        function, "Sets API Gateway's CloudWatch role, retrying while IAM propagates it"
    )


def build(config: Config) -> Template:
    """The account stack (see the module docstring)."""
    stack = Stack.new(config, COMPONENT, "Account settings shared by every project")
    stack.template.set_transform(functions.SAM_TRANSFORM)
    key, log_group = logs_key_and_group(stack)
    logs_role = cloudwatch_role(stack)
    function = settings_function(stack, key, log_group, logs_role)
    stack.add(
        _Settings(
            SETTINGS,
            ServiceToken=GetAtt(function, "Arn"),
            ServiceTimeout=SERVICE_TIMEOUT_SECONDS,
            CloudWatchRoleArn=GetAtt(logs_role, "Arn"),
        ),
        "The account's API Gateway CloudWatch role: access logging needs it",
    )
    stack.template.add_output(
        Output(
            "ApiGatewayCloudWatchRoleArn",
            Description="Role API Gateway writes REST API logs with (the account setting)",
            Value=GetAtt(logs_role, "Arn"),
        )
    )
    return stack.describe(
        "Account-wide settings: the API Gateway CloudWatch Logs role, set by a custom "
        "resource that retries while IAM propagates the role",
        must=["the API Gateway role outlives the stack: the account setting points at it"],
    )
