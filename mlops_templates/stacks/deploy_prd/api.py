"""The authenticated REST API in front of the endpoint, and the function behind it that
CodeDeploy shifts gradually."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from awacs import sagemaker as sm
from troposphere import (
    GetAtt,
    PropsDictType,
    Ref,
    apigateway,
    cloudwatch,
    serverless,
)
from troposphere.apigateway import MethodSetting

from mlops_templates import iam as iam_policy
from mlops_templates import naming
from mlops_templates.stacks import common, functions
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.hooks import (
    Hooks,
    function,
    function_role,
    log_group,
)
from mlops_templates.stacks.deploy_prd.notifications import rollback_alarm
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.deploy_prd.serving import Endpoint
from mlops_templates.stacks.stack import Stack

API_ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","extendedRequestId":"$context.extendedRequestId",'
    '"ip":"$context.identity.sourceIp","caller":"$context.identity.caller",'
    '"user":"$context.identity.user","apiKeyId":"$context.identity.apiKeyId",'
    '"requestTime":"$context.requestTime","httpMethod":"$context.httpMethod",'
    '"resourcePath":"$context.resourcePath","status":"$context.status",'
    '"protocol":"$context.protocol","responseLength":"$context.responseLength",'
    '"integrationLatency":"$context.integrationLatency",'
    '"integrationError":"$context.integrationErrorMessage",'
    '"xrayTraceId":"$context.xrayTraceId"}'
)
class _Api(serverless.Api):
    """SAM API that also tags what SAM generates for it (``PropagateTags``)."""

    props: ClassVar[PropsDictType] = {
        **serverless.Api.props,
        "PropagateTags": (bool, False),
    }


@dataclass(frozen=True, eq=False)
class Api:
    """The REST API and, with ``api.auth: api_key``, its key."""

    resource: _Api
    key: apigateway.ApiKey | None


def _resource_policy(stack: Stack) -> serverless.ResourcePolicyStatement:
    """Deny every address outside ``api.ip_allow_list``."""
    api_cfg = stack.config.api
    invoke = "execute-api:Invoke"
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": invoke,
            "Resource": "execute-api:/*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": list(api_cfg.ip_allow_list)}},
        }
    ]
    if api_cfg.auth == "api_key":
        # Without IAM auth API Gateway needs an explicit Allow; callers still need an
        # API key, and the Deny above keeps every other address out.
        statements.insert(
            0, {"Effect": "Allow", "Principal": "*", "Action": invoke, "Resource": "execute-api:/*"}
        )
    # IAM auth needs no Allow: same-account callers are authorised by their IAM policies,
    # and other accounts stay out because nothing here allows them.
    return serverless.ResourcePolicyStatement(CustomStatements=statements)


def _auth(stack: Stack) -> serverless.Auth:
    api_cfg = stack.config.api
    auth = serverless.Auth()
    if api_cfg.auth == "iam":
        # NONE: API Gateway invokes the function with its resource-based permission,
        # not with the caller's credentials.
        auth.DefaultAuthorizer = "AWS_IAM"
        auth.InvokeRole = "NONE"
    else:
        # The key, usage plan and their link are declared below rather than through
        # SAM's Auth.UsagePlan, whose generated resources carry redundant DependsOn.
        auth.ApiKeyRequired = True
    if api_cfg.ip_allow_list:
        auth.ResourcePolicy = _resource_policy(stack)
    return auth


def rest_api(stack: Stack, inputs: Inputs, names: n.Names) -> _Api:
    """The regional REST API: authenticated, throttled, traced, access-logged."""
    api_cfg = stack.config.api
    access_logs = log_group(
        stack, inputs, n.API_ACCESS_LOGS,
        why="Access logs of the API stage",
    )
    api = _Api(
        n.API,
        Name=names.api,
        StageName=api_cfg.stage_name,
        # Without it SAM also creates a stage named "Stage".
        OpenApiVersion="3.0.1",
        EndpointConfiguration=serverless.EndpointConfiguration(Type="REGIONAL"),
        Auth=_auth(stack),
        TracingEnabled=True,
        AccessLogSetting=serverless.AccessLogSetting(
            DestinationArn=GetAtt(access_logs, "Arn"), Format=API_ACCESS_LOG_FORMAT
        ),
        MethodSettings=[
            MethodSetting(
                ResourcePath="/*",
                HttpMethod="*",
                ThrottlingRateLimit=api_cfg.throttle.rate_limit,
                ThrottlingBurstLimit=api_cfg.throttle.burst_limit,
                MetricsEnabled=True,
                DataTraceEnabled=False,
            )
        ],
        Tags=functions.tag_dict(stack.config, stack.component),
        PropagateTags=True,
    )
    common.skip_checkov(
        api,
        {
            "CKV_AWS_120": "Caching is off on purpose: every POST carries its own features "
            "and a cached answer would return another request's prediction",
        },
    )
    return stack.add(
        api,
        why=f"REST API in front of the endpoint: {api_cfg.auth.replace('_', ' ')} auth, "
        "throttled, traced, access-logged",
        must=["never a method open without IAM auth or a required API key"],
    )


def usage_plan(stack: Stack, api: _Api, names: n.Names) -> apigateway.ApiKey:
    """API key and usage plan (quota and throttle per key) for ``api.auth: api_key``."""
    api_cfg = stack.config.api
    key = stack.add(
        apigateway.ApiKey(
            n.API_KEY,
            Name=f"{names.api}-key",
            Description=f"Key of the {naming.base(stack.config)} prediction API",
            Enabled=True,
            Tags=stack.tags(),
        ),
        why="The API key callers send in x-api-key",
    )
    plan = stack.add(
        apigateway.UsagePlan(
            n.USAGE_PLAN,
            UsagePlanName=f"{names.api}-usage",
            Description="Daily quota and throttle of the prediction API's key",
            # "<Api>.Stage" is SAM's reference to the stage it generates: the plan waits
            # for the stage to exist.
            ApiStages=[apigateway.ApiStage(ApiId=Ref(api), Stage=Ref(f"{n.API}.Stage"))],
            Quota=apigateway.QuotaSettings(Limit=api_cfg.quota_per_day, Period="DAY"),
            Throttle=apigateway.ThrottleSettings(
                BurstLimit=api_cfg.throttle.burst_limit,
                RateLimit=api_cfg.throttle.rate_limit,
            ),
            Tags=stack.tags(),
        ),
        why="Quota and throttle applied to the API key",
    )
    stack.add(
        apigateway.UsagePlanKey(
            n.USAGE_PLAN_KEY, KeyId=Ref(key), KeyType="API_KEY", UsagePlanId=Ref(plan)
        ),
        why="Attaches the API key to the usage plan",
    )
    return key


def rollback_alarms(stack: Stack, names: n.Names) -> list[cloudwatch.Alarm]:
    """The alarms CodeDeploy rolls the API function back on."""

    def errors(
        logical_id: str, namespace: str, metric: str, dims: dict[str, Any], description: str
    ) -> cloudwatch.Alarm:
        return rollback_alarm(
            logical_id,
            namespace,
            dims,
            AlarmDescription=description,
            MetricName=metric,
            Statistic="Sum",
            EvaluationPeriods=1,
            Threshold=1,
        )

    alias = {"FunctionName": names.api, "Resource": f"{names.api}:{n.ALIAS}"}
    new_version = {**alias, "ExecutedVersion": GetAtt(f"{n.API_FUNCTION}.Version", "Version")}
    stage = {"ApiName": names.api, "Stage": stack.config.api.stage_name}
    return [
        stack.add(
            errors(n.ALIAS_ERRORS_ALARM, "AWS/Lambda", "Errors", alias,
                   description=f"API function alias '{n.ALIAS}' raises errors (rollback)"),
            why="CodeDeploy rollback alarm: errors of the live alias (old and new version)",
        ),
        stack.add(
            errors(n.NEW_VERSION_ERRORS_ALARM, "AWS/Lambda", "Errors", new_version,
                   description="The API function version being deployed raises errors (rollback)"),
            why="CodeDeploy rollback alarm: errors of the version being deployed",
        ),
        stack.add(
            errors(n.API_5XX_ALARM, "AWS/ApiGateway", "5XXError", stage,
                   description="The API answers 5XX errors (rollback)"),
            why="CodeDeploy rollback alarm: 5XX answers of the API stage",
        ),
    ]


def _deployment(stack: Stack, hooks: Hooks, names: n.Names) -> serverless.DeploymentPreference:
    """CodeDeploy's gradual shift of the alias, guarded by the hooks and the alarms. Its
    outcome reaches the topic as a readable message through the API deployment notice rule
    (:mod:`.notices`), not as CodeDeploy's trigger JSON."""
    return serverless.DeploymentPreference(
        Type=stack.config.api.deployment_preference,
        Alarms=[Ref(alarm) for alarm in rollback_alarms(stack, names)],
        Hooks=serverless.Hooks(
            PreTraffic=Ref(hooks.pre_traffic), PostTraffic=Ref(hooks.post_traffic)
        ),
        Role=GetAtt(hooks.codedeploy_role, "Arn"),
    )


def api(
    stack: Stack,
    inputs: Inputs,
    served: Endpoint,
    hooks: Hooks,
    names: n.Names,
) -> Api:
    """The API, its optional key, and the function behind it."""
    resource = rest_api(stack, inputs, names)
    key = usage_plan(stack, resource, names) if stack.config.api.auth == "api_key" else None
    deployment = _deployment(stack, hooks, names)
    logs = log_group(
        stack, inputs, f"{n.API_FUNCTION}LogGroup",
        why="Logs of the API function",
    )
    role = function_role(
        stack,
        inputs,
        f"{n.API_FUNCTION}Role",
        names.api_role,
        logs,
        [iam_policy.allow([sm.InvokeEndpoint], served.arn, sid="InvokeEndpoint")],
        why="API function: invoke the production endpoint only",
    )
    function(
        stack,
        inputs,
        n.API_FUNCTION,
        names.api,
        "api",
        role,
        logs,
        {"ENDPOINT_NAME": served.name_ref},
        stack.config.api.timeout_seconds,
        why="Forwards API requests to the endpoint; CodeDeploy shifts its alias gradually",
        skips={
            "CKV_AWS_116": "API Gateway invokes the function synchronously and receives "
            "every error; a dead-letter queue only ever receives asynchronous events",
        },
        AutoPublishAlias=n.ALIAS,
        DeploymentPreference=deployment,
        Events={
            "Predict": {
                "Type": "Api",
                "Properties": {"RestApiId": Ref(resource), "Path": n.API_PATH, "Method": "post"},
            }
        },
    )
    return Api(resource, key)
