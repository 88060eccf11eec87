"""EventBridge rules of the pipeline stack.

New training data, the retraining schedule, the production drift alarm and (with a
CodeCommit source) pushes start the pipeline; a failed run notifies the topic.
"""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Ref, Sub, events, sns

from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.roles import Roles
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.storage import Storage

SOURCE_RULE = "SourcePushRule"
DATA_RULE = "DataUploadRule"
SCHEDULE_RULE = "RetrainScheduleRule"
DRIFT_RULE = "RetrainOnDriftRule"
FAILURE_RULE = "PipelineFailedRule"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    SOURCE_RULE: "Starts the pipeline on pushes to the CodeCommit branch",
    DATA_RULE: "Starts the pipeline when training data is uploaded",
    SCHEDULE_RULE: "Retrains on a schedule",
    DRIFT_RULE: "Retrains when the production drift alarm fires",
    FAILURE_RULE: "Notifies the topic when a pipeline run fails",
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
    if cfg.retrain_on_drift:
        _starts_pipeline(
            stack,
            start,
            DRIFT_RULE,
            "retrain-on-drift",
            f"Retrains {names.base} when its production data drifts",
            EventPattern={
                "source": ["aws.cloudwatch"],
                "detail-type": ["CloudWatch Alarm State Change"],
                "resources": [common.arn("cloudwatch", f"alarm:{names.text('prd-drift')}")],
                "detail": {"state": {"value": ["ALARM"]}},
            },
        )
    _failure_rule(stack, store.topic)


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


def _failure_rule(stack: Stack, topic: sns.Topic) -> None:
    """Tell the topic's subscribers which run failed, with a link to its console page."""
    names = stack.names
    stack.add(
        events.Rule(
            FAILURE_RULE,
            Name=names.name("pipeline-failed"),
            Description=Sub(f"Notifies the topic when a run of {names.base} fails"),
            EventPattern={
                "source": ["aws.codepipeline"],
                "detail-type": ["CodePipeline Pipeline Execution State Change"],
                "detail": {"pipeline": [names.name("pipeline")], "state": ["FAILED"]},
            },
            State="ENABLED",
            Targets=[
                events.Target(
                    Id="Notify",
                    Arn=Ref(topic),
                    InputTransformer=events.InputTransformer(
                        InputPathsMap={
                            "pipeline": "$.detail.pipeline",
                            "execution": "$.detail.execution-id",
                            "time": "$.time",
                            "region": "$.region",
                        },
                        InputTemplate=(
                            '"Pipeline <pipeline> failed at <time> (execution <execution>). '
                            "See https://<region>.console.aws.amazon.com/codesuite/codepipeline/"
                            'pipelines/<pipeline>/executions/<execution>/timeline?region=<region>"'
                        ),
                    ),
                )
            ],
        )
    )
