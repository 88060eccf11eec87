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

Model Monitor compares the captured requests with the training baseline on a schedule;
the drift alarm ``<prefix>-<name>-prd-drift`` (whose state changes the pipeline's
EventBridge rule matches to retrain) counts the features that drifted (:mod:`.monitoring`).
"""

from __future__ import annotations

from troposphere import Output, Ref, Sub, Template

from mlops_templates.config import Config
from mlops_templates.stacks import functions
from mlops_templates.stacks.deploy_prd import api as api_part
from mlops_templates.stacks.deploy_prd import hooks as hooks_part
from mlops_templates.stacks.deploy_prd import monitoring, notifications, serving
from mlops_templates.stacks.deploy_prd.monitoring import SCHEDULE_PERIOD_SECONDS
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
    "SAM_TRANSFORM", "SCHEDULE_PERIOD_SECONDS", "build",
]


def _outputs(
    stack: Stack,
    topic: object,
    served: serving.Endpoint,
    drift: object,
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
            Description="CloudWatch alarm that fires when Model Monitor finds drift",
            Value=Ref(drift),
        ),
    ]
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
    ``AWS::ApplicationAutoScaling::ScalableTarget`` and ``ScalingPolicy``;
    ``AWS::SageMaker::DataQualityJobDefinition`` and ``AWS::SageMaker::MonitoringSchedule``
    ``<prefix>-<name>-prd-data-quality`` and the drift alarm ``<prefix>-<name>-prd-drift``;
    the ``AWS::Serverless::Api`` and three ``AWS::Serverless::Function`` (API, PreTraffic
    and PostTraffic hooks) with their IAM roles and encrypted log groups, CodeDeploy's
    IAM role and three rollback alarms.
    """
    stack = Stack.new(
        config, COMPONENT, "SageMaker production endpoint with guardrails, drift monitoring and API"
    )
    stack.template.set_transform(SAM_TRANSFORM)
    names = Names.of(config)
    inputs = parameters(stack)
    topic = notifications.topic(stack, inputs, names)
    served = serving.endpoint(stack, inputs, topic, names)
    serving.autoscaling(stack, served)
    monitoring.schedule(stack, inputs, served, names)
    drift = monitoring.drift_alarm(stack, topic, names)
    hooks = hooks_part.hooks(stack, inputs, topic, served, names)
    api = api_part.api(stack, inputs, topic, served, hooks, names)
    _outputs(stack, topic, served, drift, api)
    return stack.describe(
        "API Gateway (IAM or API key) -> Lambda alias (CodeDeploy canary with hooks) -> "
        "SageMaker endpoint (blue/green guardrails, auto scaling, data capture to S3) -> "
        "Model Monitor schedule -> drift alarm -> SNS and the pipeline's retraining rule",
        must=[
            "data at rest encrypted with customer-managed KMS keys",
            "the API is never reachable without authentication",
        ],
    )
