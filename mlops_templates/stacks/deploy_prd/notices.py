"""Readable notifications of production's events: EventBridge rules that turn an alarm's or
a deployment's state change into one message on the topic (texts: :mod:`mlops_templates.notifications`).

* ``DriftNoticeRule``, ``QualityNoticeRule``: the drift and model-quality alarms going to
  ALARM (what retraining then does is in the text);
* ``RollbackNoticeRule``: any rollback alarm (the endpoint's 5XX and latency guardrails, the
  API's errors and 5XX) going to ALARM, which rolls back a deployment in progress;
* ``ApiDeploymentNoticeRule``: a CodeDeploy deployment of the API function succeeding,
  failing or stopping (CodeDeploy rolls the failed and stopped ones back).

The alarms themselves have no actions, so no one receives an alarm's raw JSON. The batch
stack notifies its own drift and model-quality alarms with the same rules
(:func:`drift_notice`, :func:`quality_notice`) on the pipeline's topic. The topic's
policy lets these rules publish (EventBridge needs a topic policy that allows
``events.amazonaws.com``: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html#eb-sns-permissions);
the project key's policy already lets EventBridge use the key of the encrypted topic (the
pipeline stack's ``KmsKey``).
"""

from __future__ import annotations

from typing import Any

from awacs import sns as sns_actions
from awacs.aws import Allow, ArnEquals, Condition, Principal, Statement
from troposphere import GetAtt, Ref, events, sns

from mlops_templates import iam as iam_policy
from mlops_templates import notifications
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.alarms import quality_rule
from mlops_templates.stacks.stack import Stack

_ALARM_PATHS = {"alarm": "$.detail.alarmName", "reason": "$.detail.state.reason", "time": "$.time"}
ROLLBACK_ALARMS = (
    n.ENDPOINT_5XX_ALARM,
    n.ENDPOINT_LATENCY_ALARM,
    n.ALIAS_ERRORS_ALARM,
    n.NEW_VERSION_ERRORS_ALARM,
    n.API_5XX_ALARM,
)


def retrain_text(stack: Stack, alarm: str) -> str:
    """What the pipeline does when ``alarm`` (drift or quality) fires."""
    pipeline = stack.config.pipeline
    if pipeline.orchestrator != "codepipeline":
        return f"The {pipeline.orchestrator} workflow does not retrain on alarms."
    if alarm in pipeline.retrain_on:
        return "The pipeline starts a retraining run."
    return f"Retraining on {alarm} is off (pipeline.retrain_on)."


def _rule(stack: Stack, logical_id: str, name: str, event: str, topic_arn: Any, pattern: dict[str, Any],
          paths: dict[str, str], static: dict[str, str], why: str) -> events.Rule:
    rendered = notifications.render(event, stack.config.notifications.messages.get(event), static)
    paths_map, template = rendered.eventbridge(paths)
    return stack.add(
        events.Rule(
            logical_id,
            Name=name,
            Description=f"Sends the {event} notification of {static.get('endpoint', 'production')}",
            EventPattern=pattern,
            State="ENABLED",
            Targets=[
                events.Target(
                    Id="Notify",
                    Arn=topic_arn,
                    InputTransformer=events.InputTransformer(
                        InputPathsMap=paths_map, InputTemplate=template
                    ),
                )
            ],
        ),
        why,
    )


def _alarm_pattern(alarms: list[Any]) -> dict[str, Any]:
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [GetAtt(alarm, "Arn") for alarm in alarms],
        "detail": {"state": {"value": ["ALARM"]}},
    }


def drift_notice(stack: Stack, topic_arn: Any, endpoint: str, name: str, drift: Any) -> events.Rule:
    """The ``drift`` notice of the drift alarm ``drift`` (deploy-prd's or the batch stack's)."""
    return _rule(stack, n.DRIFT_NOTICE, name, "drift", topic_arn, _alarm_pattern([drift]), _ALARM_PATHS,
                 {"endpoint": endpoint, "retrain": retrain_text(stack, "drift")},
                 "Notifies the topic, in words, when the drift alarm fires")


def quality_notice(stack: Stack, topic_arn: Any, endpoint: str, name: str, quality: Any) -> events.Rule:
    """The ``quality_breach`` notice of the model-quality alarm ``quality``."""
    return _rule(stack, n.QUALITY_NOTICE, name, "quality_breach", topic_arn, _alarm_pattern([quality]),
                 _ALARM_PATHS,
                 {"endpoint": endpoint, "rule": quality_rule(stack, words=True),
                  "retrain": retrain_text(stack, "quality")},
                 "Notifies the topic, in words, when the model-quality alarm fires")


def notices(stack: Stack, topic: sns.Topic, names: n.Names, drift: Any, quality: Any | None) -> list[events.Rule]:
    """The notification rules and the topic policy that lets them publish."""
    endpoint = {"endpoint": names.endpoint}
    rules = [
        drift_notice(stack, Ref(topic), names.endpoint, names.notices["drift"], drift),
        _rule(stack, n.ROLLBACK_NOTICE, names.notices["rollback"], "rolled_back", Ref(topic),
              _alarm_pattern(list(ROLLBACK_ALARMS)), _ALARM_PATHS, endpoint,
              "Notifies the topic, in words, when a rollback alarm fires"),
        _rule(stack, n.API_DEPLOYMENT_NOTICE, names.notices["api"], "api_deployment", Ref(topic),
              {
                  "source": ["aws.codedeploy"],
                  "detail-type": ["CodeDeploy Deployment State-change Notification"],
                  "detail": {"application": [Ref(n.SAM_CODEDEPLOY_APPLICATION)],
                             "state": ["SUCCESS", "FAILURE", "STOP"]},
              },
              {"deployment": "$.detail.deploymentId", "state": "$.detail.state", "time": "$.time"},
              endpoint, "Notifies the topic, in words, when a deployment of the API function ends"),
    ]
    if quality is not None:
        rules.append(quality_notice(stack, Ref(topic), names.endpoint, names.notices["quality"], quality))
    stack.add(
        sns.TopicPolicy(
            n.NOTIFICATION_TOPIC_POLICY,
            Topics=[Ref(topic)],
            PolicyDocument=iam_policy.document(
                Statement(
                    Sid="NotificationRules",
                    Effect=Allow,
                    Principal=Principal("Service", "events.amazonaws.com"),
                    Action=[sns_actions.Publish],
                    Resource=[Ref(topic)],
                    Condition=Condition(ArnEquals("aws:SourceArn", [GetAtt(r, "Arn") for r in rules])),
                )
            ),
        ),
        "Lets the notification rules (and only them) publish to the topic",
    )
    return rules
