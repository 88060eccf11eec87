"""The batch state machine, its role, and what starts it: the upload rule and the optional
schedule, each with a role that may start this state machine only.

* The data bucket sends its events to EventBridge (the pipeline stack's ``DataBucket``:
  ``EventBridgeConfiguration``); the rule matches ``Object Created`` under
  ``batch.input_prefix`` and passes ``{"Bucket", "Key"}`` to the execution
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/EventBridge.html).
* EventBridge Scheduler starts an execution as a templated target
  (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html).
* The state machine's role has what its integrations call, as the Step Functions developer
  guide lists it for SageMaker ("IAM policies for Amazon SageMaker":
  https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html): the ``.sync``
  transform and processing jobs are created, described, stopped and tagged, and watched through
  the managed rules ``StepFunctionsGetEventsFor...JobsRule``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from awacs import cloudwatch as cloudwatch_actions
from awacs import events as events_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sagemaker as sm
from awacs import sns as sns_actions
from awacs import states as states_actions
from awacs.aws import Condition, Statement, StringEquals, StringLike
from troposphere import GetAtt, Join, Ref, Sub, events, iam, scheduler, stepfunctions

from mlops_templates import iam as iam_policy
from mlops_templates import naming
from mlops_templates.stacks import common
from mlops_templates.stacks.batch import definition as d
from mlops_templates.stacks.batch import names as n
from mlops_templates.stacks.stack import Stack


@dataclass(frozen=True, eq=False)
class Inputs:
    """The Parameters, as the parts refer to them."""

    kms_key_arn: Any
    sagemaker_role_arn: Any
    data_bucket: Any
    topic_arn: Any


def _bucket_arn(inputs: Inputs, key: str = "") -> Any:
    return Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", inputs.data_bucket, key])


def _sagemaker_statements(stack: Stack, inputs: Inputs) -> list[Statement]:
    config = stack.config
    base = naming.base(config)
    group = naming.physical_name(config, "models")
    managed = "rule/StepFunctionsGetEventsForSageMaker{}JobsRule"
    return [
        # ListModelPackages supports no resource-level permissions (Service Authorization
        # Reference, Amazon SageMaker).
        iam_policy.allow([sm.ListModelPackages], "*", sid="FindApprovedModel"),
        iam_policy.allow([sm.DescribeModelPackage], common.arn("sagemaker", f"model-package/{group}/*"),
                         sid="DescribeApprovedModel"),
        iam_policy.allow([sm.CreateModel, sm.DeleteModel, sm.DescribeModel, sm.AddTags],
                         common.arn("sagemaker", f"model/{base}-batch-*"), sid="RunModels"),
        iam_policy.allow([sm.CreateTransformJob, sm.DescribeTransformJob, sm.StopTransformJob,
                          sm.AddTags, sm.ListTags],
                         common.arn("sagemaker", f"transform-job/{base}-batch-*"), sid="RunTransformJobs"),
        iam_policy.allow([sm.CreateProcessingJob, sm.DescribeProcessingJob, sm.StopProcessingJob,
                          sm.AddTags, sm.ListTags],
                         common.arn("sagemaker", f"processing-job/{base}-batch-mon-*"), sid="RunMonitorJobs"),
        iam_policy.pass_role(inputs.sagemaker_role_arn, "sagemaker.amazonaws.com", sid="PassSageMakerRole"),
        iam_policy.allow(
            [events_actions.PutTargets, events_actions.PutRule, events_actions.DescribeRule],
            [common.arn("events", managed.format(kind)) for kind in ("Transform", "Processing")],
            sid="SyncJobEvents",
        ),
    ]


def machine_role(stack: Stack, inputs: Inputs, names: n.Names) -> iam.Role:
    """The batch state machine's role (see the module docstring)."""
    batch = stack.config.batch
    statements = [
        *_sagemaker_statements(stack, inputs),
        iam_policy.allow([s3_actions.ListBucket], _bucket_arn(inputs),
                         conditions=Condition(StringLike("s3:prefix", batch.ground_truth_prefix)),
                         sid="FindGroundTruth"),
        iam_policy.allow([s3_actions.GetObject], _bucket_arn(inputs, f"/{batch.output_prefix}*"),
                         sid="ReadMetrics"),
        # PutMetricData supports no resource-level permissions; the namespace is pinned.
        iam_policy.allow(
            [cloudwatch_actions.PutMetricData], "*",
            conditions=Condition(StringEquals("cloudwatch:namespace", naming.metrics_namespace(stack.config))),
            sid="PublishMetrics",
        ),
        iam_policy.allow([sns_actions.Publish], inputs.topic_arn, sid="Notify"),
        # The metrics, the topic and the execution data are encrypted with the project key.
        iam_policy.allow([kms_actions.Decrypt, kms_actions.GenerateDataKey], inputs.kms_key_arn,
                         sid="UseProjectKey"),
        iam_policy.state_machine_logs_and_traces(),
    ]
    return stack.add(
        iam.Role(
            n.STATES_ROLE,
            RoleName=names.states_role,
            AssumeRolePolicyDocument=iam_policy.trust("states.amazonaws.com"),
            Policies=[iam_policy.inline_policy("batch", *statements)],
            Tags=stack.tags(),
        ),
        "Batch state machine: approved model, model, transform and monitor jobs, metrics, notices",
    )


def state_machine(stack: Stack, inputs: Inputs, names: n.Names) -> stepfunctions.StateMachine:
    """The STANDARD state machine of :mod:`.definition`, encrypted, logged, traced."""
    role = machine_role(stack, inputs, names)
    logs_group = stack.add(
        common.log_group(
            n.LOG_GROUP, stack.config, stack.component, inputs.kms_key_arn,
            stack.config.api.log_retention_days,
            name=Sub(f"/aws/vendedlogs/states/{names.machine}-${{Suffix}}", Suffix=common.stack_suffix()),
        ),
        "Execution log of the batch state machine",
    )
    return stack.add(
        common.audited_state_machine(
            n.STATE_MACHINE, names.machine, GetAtt(role, "Arn"), d.definition(stack.config),
            {
                n.SAGEMAKER_ROLE_ARN: inputs.sagemaker_role_arn,
                n.KMS_KEY_ARN: inputs.kms_key_arn,
                n.DATA_BUCKET: inputs.data_bucket,
                n.NOTIFICATION_TOPIC_ARN: inputs.topic_arn,
            },
            inputs.kms_key_arn, logs_group, stack.tags(),
        ),
        "Batch state machine: newest approved model, batch transform, monitor job, metrics; "
        "notifies a failed run",
    )


def _start_role(stack: Stack, logical_id: str, name: str, service: str, machine: Any, inputs: Inputs,
                decrypt: bool) -> iam.Role:
    statements = [iam_policy.allow([states_actions.StartExecution], Ref(machine), sid="StartBatch")]
    if decrypt:
        # The schedule's payload is encrypted with the project key.
        statements.append(iam_policy.allow([kms_actions.Decrypt], inputs.kms_key_arn, sid="DecryptSchedule"))
    return stack.add(
        iam.Role(
            logical_id,
            RoleName=name,
            # Confused-deputy guard: only this account's rules and schedules may use the role.
            AssumeRolePolicyDocument=iam_policy.trust(
                service, conditions=Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId")))),
            Policies=[iam_policy.inline_policy("start-batch", *statements)],
            Tags=stack.tags(),
        ),
        f"{service.split('.')[0]}'s role: start the batch state machine only",
    )


def upload_rule(stack: Stack, inputs: Inputs, machine: Any, names: n.Names) -> events.Rule:
    """Start a run for every object created under ``batch.input_prefix``."""
    role = _start_role(stack, n.UPLOAD_ROLE, names.upload_role, "events.amazonaws.com", machine, inputs, False)
    return stack.add(
        events.Rule(
            n.UPLOAD_RULE,
            Name=names.upload_rule,
            Description=f"Starts {names.machine} for each upload under {stack.config.batch.input_prefix}",
            EventPattern={
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [inputs.data_bucket]},
                           "object": {"key": [{"prefix": stack.config.batch.input_prefix}]}},
            },
            State="ENABLED",
            Targets=[events.Target(
                Id="Batch", Arn=Ref(machine), RoleArn=GetAtt(role, "Arn"),
                InputTransformer=events.InputTransformer(
                    InputPathsMap={"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
                    InputTemplate='{"Bucket": <bucket>, "Key": <key>}',
                ),
            )],
        ),
        "Starts the batch state machine for each upload under batch.input_prefix",
    )


def schedule(stack: Stack, inputs: Inputs, machine: Any, names: n.Names) -> scheduler.Schedule:
    """Start a run over the whole input prefix on ``batch.schedule_expression``."""
    role = _start_role(stack, n.SCHEDULER_ROLE, names.scheduler_role, "scheduler.amazonaws.com", machine,
                       inputs, True)
    return stack.add(
        scheduler.Schedule(
            n.SCHEDULE,
            Name=names.schedule,
            Description=f"Transforms everything under {stack.config.batch.input_prefix}",
            ScheduleExpression=stack.config.batch.schedule_expression,
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow=scheduler.FlexibleTimeWindow(Mode="OFF"),
            KmsKeyArn=inputs.kms_key_arn,
            State="ENABLED",
            Target=scheduler.Target(
                Arn=Ref(machine), RoleArn=GetAtt(role, "Arn"),
                Input=json.dumps({"ScheduledTime": "<aws.scheduler.scheduled-time>"}),
                RetryPolicy=scheduler.RetryPolicy(MaximumRetryAttempts=3, MaximumEventAgeInSeconds=3600),
            ),
        ),
        "Starts the batch state machine on batch.schedule_expression",
    )
