"""The production stack (``deploy-prd``): guarded endpoint, drift monitoring, public API.

A SAM template (``Transform: AWS::Serverless-2016-10-31``): the API's Lambda function is
canary-deployed by CodeDeploy through SAM's ``AutoPublishAlias``/``DeploymentPreference``.
``CodeUri`` paths are relative to ``templates/``, where the rendered file lives, so
``aws cloudformation package`` finds ``../lambdas/<function>/``.

Two deployment mechanisms guard production:

* the SageMaker endpoint uses SageMaker's own deployment guardrails: a blue/green update
  (canary, linear or all at once) that rolls back by itself when the endpoint's 5XX or
  latency alarm fires while traffic shifts (:mod:`.serving`);
* the API function shifts Lambda alias traffic with CodeDeploy, after a PreTraffic hook
  has checked the endpoint and before a PostTraffic hook checks that requests are still
  captured (:mod:`.hooks`); CodeDeploy rolls back on the alias, new-version or API 5XX
  alarms (:mod:`.api`).

A schedule checks the captured traffic against the training baseline (:mod:`.monitoring`:
the project's own monitor job, or SageMaker Model Monitor where the account has it); the
drift alarm ``<prefix>-<name>-prd-drift`` counts the features that drifted and the quality
alarm ``<prefix>-<name>-prd-quality`` watches the error on uploaded ground truth (the
pipeline's EventBridge rule matches both to retrain). Notification rules word every event
for the topic (:mod:`.notices`); a dashboard shows traffic, errors, latency, drift, model
quality and the last monitoring run (:mod:`.dashboard`).
"""

from __future__ import annotations

import json

from troposphere import Output, Ref, Sub, Template

from mlops_templates.config import Config
from mlops_templates.stacks import functions
from mlops_templates.stacks.deploy_prd import api as api_part
from mlops_templates.stacks.deploy_prd import (
    dashboard,
    monitoring,
    notices,
    notifications,
    serving,
)
from mlops_templates.stacks.deploy_prd import hooks as hooks_part
from mlops_templates.stacks.deploy_prd.monitoring import (
    SCHEDULE_PERIOD_SECONDS,
    Monitoring,
)
from mlops_templates.stacks.deploy_prd.names import (
    ALIAS,
    API,
    API_5XX_ALARM,
    API_ACCESS_LOGS,
    API_FUNCTION,
    API_KEY,
    API_PATH,
    BASELINE_CONSTRAINTS_URI,
    BASELINE_STATISTICS_URI,
    CODEDEPLOY_ROLE,
    COMPONENT,
    DASHBOARD,
    DATA_CAPTURE_URI,
    DRIFT_ALARM,
    ENDPOINT,
    MONITORING_OUTPUT_URI,
    NOTIFICATION_EMAIL,
    NOTIFICATION_TOPIC,
    POST_TRAFFIC_HOOK,
    PRE_TRAFFIC_HOOK,
    SAM_CODEDEPLOY_APPLICATION,
    SAM_DEPLOYMENT_GROUP,
    SAMPLE_CSV,
    Names,
)
from mlops_templates.stacks.deploy_prd.parameters import parameters
from mlops_templates.stacks.stack import Stack

SAM_TRANSFORM = functions.SAM_TRANSFORM
PYTHON_RUNTIME = functions.PYTHON_RUNTIME

__all__ = [
    "ALIAS", "API", "API_5XX_ALARM", "API_ACCESS_LOGS", "API_FUNCTION", "API_KEY", "API_PATH",
    "BASELINE_CONSTRAINTS_URI", "BASELINE_STATISTICS_URI", "CODEDEPLOY_ROLE", "COMPONENT",
    "DATA_CAPTURE_URI", "DRIFT_ALARM", "ENDPOINT", "MONITORING_OUTPUT_URI",
    "NOTIFICATION_EMAIL", "NOTIFICATION_TOPIC", "POST_TRAFFIC_HOOK", "PRE_TRAFFIC_HOOK",
    "PYTHON_RUNTIME", "SAMPLE_CSV", "SAM_CODEDEPLOY_APPLICATION", "SAM_DEPLOYMENT_GROUP",
    "SAM_TRANSFORM", "SCHEDULE_PERIOD_SECONDS", "artifacts", "build", "enabled",
]


def enabled(config: Config) -> bool:
    """Not with ``deployment.mode: batch`` (no endpoints)."""
    return config.deployment.realtime


def artifacts(config: Config) -> dict[str, str]:
    """``monitor.asl.json`` (builtin monitoring): the monitor state machine's definition
    for ASL validators, placeholders left in."""
    if config.monitoring.engine != "builtin":
        return {}
    from mlops_templates.stacks.deploy_prd import monitor_definition

    return {"monitor.asl.json": json.dumps(monitor_definition.definition(config), indent=2) + "\n"}


def _outputs(
    stack: Stack,
    topic: object,
    served: serving.Endpoint,
    watched: Monitoring,
    api: api_part.Api,
) -> None:
    outputs = [
        Output(
            "EndpointName",
            Description="Name of the production SageMaker endpoint",
            Value=served.name_ref,
        ),
        Output(
            "ApiUrl",
            Description=f"URL to POST text/csv or application/json rows to ({API_PATH})",
            Value=Sub(
                f"https://${{{API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
                f"/{stack.config.api.stage_name}{API_PATH}"
            ),
        ),
        Output(
            "NotificationTopicArn",
            Description="SNS topic of the stack's alarms and API deployments",
            Value=Ref(topic),
        ),
        Output(
            "DriftAlarmName",
            Description="CloudWatch alarm that fires when the captured data drifts from the baseline",
            Value=Ref(watched.drift_alarm),
        ),
        Output(
            "DashboardName",
            Description="CloudWatch dashboard of the endpoint and its monitoring",
            Value=Ref(DASHBOARD),
        ),
    ]
    if watched.quality_alarm is not None:
        outputs.append(
            Output(
                "QualityAlarmName",
                Description="CloudWatch alarm that fires when the error on ground truth breaches the threshold",
                Value=Ref(watched.quality_alarm),
            )
        )
    if watched.monitor is not None:
        outputs.append(
            Output(
                "MonitorStateMachineArn",
                Description="State machine of the monitoring runs (start it to check a window now)",
                Value=Ref(watched.monitor.machine),
            )
        )
    if api.key is not None:
        outputs.append(
            Output(
                "ApiKeyId",
                Description="ID of the API key (read its value with apigateway get-api-key)",
                Value=Ref(api.key),
            )
        )
    stack.template.add_output(outputs)


def build(config: Config) -> Template:
    """The production stack.

    Creates: a KMS-encrypted ``AWS::SNS::Topic`` (optional e-mail subscription);
    ``AWS::SageMaker::Model``, ``AWS::SageMaker::EndpointConfig`` (volume and data capture
    encrypted with ``KmsKeyArn``) and the ``AWS::SageMaker::Endpoint``
    ``<prefix>-<name>-prd`` with a blue/green ``DeploymentConfig`` and auto-rollback on
    two ``AWS::CloudWatch::Alarm`` (5XX errors, model latency);
    ``AWS::ApplicationAutoScaling::ScalableTarget`` and ``ScalingPolicy``; monitoring:
    with the builtin engine the ``AWS::Scheduler::Schedule``, the monitor
    ``AWS::StepFunctions::StateMachine`` and window ``AWS::Serverless::Function`` (with their
    roles and log groups), the drift and model-quality ``AWS::CloudWatch::Alarm``; with
    Model Monitor its ``AWS::SageMaker::DataQualityJobDefinition`` and
    ``AWS::SageMaker::MonitoringSchedule`` and the drift alarm; the
    ``AWS::Serverless::Api`` and three ``AWS::Serverless::Function`` (API, PreTraffic and
    PostTraffic hooks) with their IAM roles and encrypted log groups, CodeDeploy's IAM role
    and three rollback alarms; the notification ``AWS::Events::Rule`` resources and the topic's
    ``AWS::SNS::TopicPolicy``; the ``AWS::CloudWatch::Dashboard``.
    """
    stack = Stack.new(
        config, COMPONENT, "SageMaker production endpoint with guardrails, drift monitoring and API"
    )
    stack.template.set_transform(SAM_TRANSFORM)
    names = Names.of(config)
    inputs = parameters(stack)
    topic = notifications.topic(stack, inputs, names)
    served = serving.endpoint(stack, inputs, names)
    serving.autoscaling(stack, served)
    watched = monitoring.monitoring(stack, inputs, topic, served, names)
    hooks = hooks_part.hooks(stack, inputs, topic, served, names)
    api = api_part.api(stack, inputs, served, hooks, names)
    notices.notices(stack, topic, names, watched.drift_alarm, watched.quality_alarm)
    dashboard.dashboard(stack, names, watched.alarms)
    _outputs(stack, topic, served, watched, api)
    return stack.describe(
        "API Gateway (IAM or API key) -> Lambda alias (CodeDeploy canary with hooks) -> "
        "SageMaker endpoint (blue/green guardrails, auto scaling, data capture to S3) -> "
        "scheduled monitor (drift, data and model quality) -> drift and quality alarms -> "
        "readable notices on SNS and the pipeline's retraining rule",
        must=[
            "data at rest encrypted with customer-managed KMS keys",
            "the API is never reachable without authentication",
        ],
    )
