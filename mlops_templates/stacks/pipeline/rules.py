"""EventBridge rules of the pipeline stack.

New training data, the retraining schedule, the production drift and model-quality alarms
(``pipeline.retrain_on``) and (with a CodeCommit source) pushes start the pipeline; a run
that starts, fails or ends (dev deployed, the model waiting for approval) notifies the
topic in words (:mod:`mlops_templates.notifications`). The rules of the model registry
are in :mod:`.promotion`.
"""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Ref, Sub, events, sns

from mlops_templates import notifications
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.roles import Roles
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.storage import RUN_NOTICE_COMPONENTS, Storage

SOURCE_RULE = "SourcePushRule"
DATA_RULE = "DataUploadRule"
SCHEDULE_RULE = "RetrainScheduleRule"
DRIFT_RULE = "RetrainOnDriftRule"
FAILURE_RULE = "PipelineFailedRule"
STARTED_RULE = "RunStartedRule"
DEPLOYED_RULE = "RunSucceededRule"
#: The production alarm of each ``pipeline.retrain_on`` entry (deploy-prd names them).
RETRAIN_ALARMS = {"drift": "prd-drift", "quality": "prd-quality"}
#: The batch stack's alarm of each entry (``deployment.mode`` batch or both).
BATCH_RETRAIN_ALARMS = {"drift": "batch-drift", "quality": "batch-quality"}
#: Notification rule -> (its name's component, its event in ``notifications.EVENTS``); the
#: topic's policy lets the rules of these names publish.
NOTICE_RULES = dict(
    zip(
        (FAILURE_RULE, STARTED_RULE, DEPLOYED_RULE),
        zip(RUN_NOTICE_COMPONENTS, ("run_failed", "run_started", "deployed")),
    )
)

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    SOURCE_RULE: "Starts the pipeline on pushes to the CodeCommit branch",
    DATA_RULE: "Starts the pipeline when training data is uploaded",
    SCHEDULE_RULE: "Retrains on a schedule",
    DRIFT_RULE: "Retrains when a production alarm of pipeline.retrain_on fires",
    FAILURE_RULE: "Notifies the topic when a pipeline run fails",
    STARTED_RULE: "Notifies the topic when a pipeline run starts",
    DEPLOYED_RULE: "Notifies the topic when a run ends: dev deployed, the model waits for approval",
}


def create(stack: Stack, store: Storage, roles: Roles) -> None:
    """Add the rules that start the pipeline (as the EventBridge role) and the failure rule."""
    cfg, names, source = stack.config.pipeline, stack.names, stack.config.pipeline.source
    start = [
        events.Target(Id="Pipeline", Arn=roles.resources.pipeline_arn, RoleArn=GetAtt(roles.events, "Arn"))
    ]
    if source.provider == "codecommit":
        _starts_pipeline(
            stack,
            start,
            SOURCE_RULE,
            "source-push",
            f"Starts {names.base} on pushes to {source.branch}",
            EventPattern={
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Repository State Change"],
                "resources": [common.arn("codecommit", source.repository)],
                "detail": {
                    "event": ["referenceCreated", "referenceUpdated"],
                    "referenceType": ["branch"],
                    "referenceName": [source.branch],
                },
            },
        )
    _starts_pipeline(
        stack,
        start,
        DATA_RULE,
        "data-upload",
        f"Starts {names.base} when training data is uploaded",
        EventPattern={
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {
                "bucket": {"name": [Ref(store.data)]},
                "object": {"key": [{"prefix": cfg.data_prefix}]},
            },
        },
    )
    _starts_pipeline(
        stack,
        start,
        SCHEDULE_RULE,
        "retrain-schedule",
        f"Retrains {names.base} on a schedule",
        state="ENABLED" if cfg.retrain_schedule_enabled else "DISABLED",
        ScheduleExpression=cfg.retrain_schedule,
    )
    # Model Monitor's engine has no model-quality alarm (deploy-prd's monitoring.py).
    kinds = [k for k in cfg.retrain_on if k == "drift" or stack.config.monitoring.engine == "builtin"]
    if kinds:
        # Matched by name: the alarms live in the deploy-prd (and batch) stack of every run.
        alarms = [common.arn("cloudwatch", f"alarm:{names.text(component)}") for component in retrain_alarms(stack, kinds)]
        _starts_pipeline(
            stack,
            start,
            DRIFT_RULE,
            "retrain-on-alarm",
            f"Retrains {names.base} when its production {' or '.join(kinds)} alarm fires",
            EventPattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": alarms,
                "detail": {"state": {"value": ["ALARM"]}},
            },
        )
    _notice_rules(stack, store.topic)


def retrain_alarms(stack: Stack, kinds: list[str]) -> list[str]:
    """The name components of the alarms of ``kinds`` the deployment mode has."""
    mode = stack.config.deployment
    return ([RETRAIN_ALARMS[k] for k in kinds] if mode.realtime else []) + (
        [BATCH_RETRAIN_ALARMS[k] for k in kinds] if mode.batch else [])


def _starts_pipeline(
    stack: Stack,
    targets: list[events.Target],
    logical_id: str,
    name: str,
    description: str,
    state: str = "ENABLED",
    **trigger: Any,
) -> None:
    """A rule that starts a run on ``trigger``: an EventPattern or a ScheduleExpression."""
    stack.add(
        events.Rule(
            logical_id,
            Name=stack.names.name(name),
            Description=Sub(description),
            **trigger,
            State=state,
            Targets=targets,
        )
    )


def _notice_rules(stack: Stack, topic: sns.Topic) -> None:
    """Tell the topic's subscribers, in words, that a run started, failed or ended (a
    failure with a link to its console page)."""
    names = stack.names
    pipeline = names.name("pipeline")
    codepipeline = {"source": ["aws.codepipeline"]}
    patterns = {
        FAILURE_RULE: {**codepipeline, "detail-type": ["CodePipeline Pipeline Execution State Change"],
                       "detail": {"pipeline": [pipeline], "state": ["FAILED"]}},
        STARTED_RULE: {**codepipeline, "detail-type": ["CodePipeline Pipeline Execution State Change"],
                       "detail": {"pipeline": [pipeline], "state": ["STARTED"]}},
        DEPLOYED_RULE: {**codepipeline, "detail-type": ["CodePipeline Pipeline Execution State Change"],
                        "detail": {"pipeline": [pipeline], "state": ["SUCCEEDED"]}},
    }
    paths = {"pipeline": "$.detail.pipeline", "execution": "$.detail.execution-id",
             "time": "$.time", "region": "$.region"}
    for logical_id, (component, event) in NOTICE_RULES.items():
        text = stack.config.notifications.messages.get(event)
        paths_map, template = notifications.render(event, text, {}).eventbridge(paths)
        stack.add(
            events.Rule(
                logical_id,
                Name=names.name(component),
                Description=Sub(f"Sends the {event} notification of {names.base}"),
                EventPattern=patterns[logical_id],
                State="ENABLED",
                Targets=[
                    events.Target(
                        Id="Notify",
                        Arn=Ref(topic),
                        InputTransformer=events.InputTransformer(
                            InputPathsMap=paths_map, InputTemplate=template
                        ),
                    )
                ],
            )
        )
