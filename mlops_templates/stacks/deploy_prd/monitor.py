"""The builtin monitor (``monitoring.engine: builtin``): a schedule starts the monitor state
machine, which finds the window's files with a small function and runs the project image's
``monitor`` job on them (:mod:`.monitor_definition`).

Resources: the window function (``AWS::Serverless::Function`` ``<base>-prd-monitor-window``)
with its role and log group; the ``AWS::StepFunctions::StateMachine`` ``<base>-prd-monitor``
(STANDARD, encrypted with the project key, logged, traced) with its role and log group; the
``AWS::Scheduler::Schedule`` ``<base>-prd-monitor-schedule`` (the configured expression, in
UTC, payload encrypted with the project key) with its role.

EventBridge Scheduler starts a Step Functions execution as a templated target: the target's
``Arn`` is the state machine's and its role needs ``states:StartExecution``
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-templated.html);
``<aws.scheduler.scheduled-time>`` in the input is the time the run was scheduled for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from awacs import awslambda as lambda_actions
from awacs import cloudwatch as cloudwatch_actions
from awacs import events as events_actions
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sagemaker as sm
from awacs import sns as sns_actions
from awacs import states as states_actions
from awacs.aws import Condition, Statement, StringEquals, StringLike
from troposphere import (
    GetAtt,
    Join,
    Parameter,
    Ref,
    Select,
    Split,
    Sub,
    iam,
    scheduler,
    sns,
    stepfunctions,
)

from mlops_templates import iam as iam_policy
from mlops_templates import naming
from mlops_templates.stacks import common, functions
from mlops_templates.stacks import endpoint as shared
from mlops_templates.stacks.deploy_prd import monitor_definition as md
from mlops_templates.stacks.deploy_prd import names as n
from mlops_templates.stacks.deploy_prd.alarms import SCHEDULES
from mlops_templates.stacks.deploy_prd.hooks import function, function_role, log_group
from mlops_templates.stacks.deploy_prd.parameters import Inputs
from mlops_templates.stacks.stack import Stack

#: The window function's timeout (listing a day of hourly folders takes seconds).
WINDOW_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, eq=False)
class Monitor:
    """What the dashboard and the outputs name."""

    machine: stepfunctions.StateMachine
    schedule: scheduler.Schedule


def _path(uri: Parameter) -> Any:
    """``bucket/prefix`` of an ``s3://bucket/prefix`` Parameter."""
    return Select(1, Split("s3://", Ref(uri)))


def _bucket_arn(uri: Any) -> Any:
    return Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", Select(0, Split("/", _path(uri)))])


def _objects_arn(uri: Any) -> Any:
    return Join("", ["arn:", Ref("AWS::Partition"), ":s3:::", _path(uri), "/*"])


def _window_statements(inputs: Inputs, names: n.Names) -> list[Statement]:
    """List the window's capture and ground-truth folders; write the manifests."""
    assert inputs.ground_truth_uri is not None
    # Fn::Split takes only a literal delimiter, so a key prefix of any depth cannot be cut
    # out of a Parameter: listing is limited to what the folders are named after (the
    # endpoint, and the ground-truth prefix's first segment).
    truth_prefix = Join("", [Select(1, Split("/", _path(inputs.ground_truth_uri))), "/*"])
    return [
        iam_policy.allow(
            [s3_actions.ListBucket], _bucket_arn(inputs.capture_uri),
            conditions=Condition(StringLike("s3:prefix", [f"*/{names.endpoint}/*", f"{names.endpoint}/*"])),
            sid="ListCapturedHours",
        ),
        iam_policy.allow(
            [s3_actions.ListBucket], _bucket_arn(inputs.ground_truth_uri),
            conditions=Condition(StringLike("s3:prefix", truth_prefix)),
            sid="ListGroundTruthHours",
        ),
        iam_policy.allow([s3_actions.PutObject], _objects_arn(inputs.monitoring_uri), sid="WriteManifests"),
        # The bucket encrypts new objects with the project key.
        iam_policy.allow([kms_actions.GenerateDataKey], inputs.kms_key_arn, sid="EncryptManifests"),
    ]


def window_function(stack: Stack, inputs: Inputs, names: n.Names) -> functions.SamFunction:
    """The function that turns a scheduled time into the window's job inputs."""
    assert inputs.ground_truth_uri is not None
    logs_group = log_group(stack, inputs, f"{n.MONITOR_WINDOW}LogGroup", "Logs of the monitor window function")
    role = function_role(
        stack, inputs, f"{n.MONITOR_WINDOW}Role", names.monitor_window, logs_group,
        _window_statements(inputs, names),
        "Monitor window function: list the window's capture and ground-truth folders, "
        "write the job's manifests",
    )
    mon = stack.config.monitoring
    return function(
        stack, inputs, n.MONITOR_WINDOW, names.monitor_window, "monitor_window", role, logs_group,
        {
            "CAPTURE_URI": Ref(inputs.capture_uri),
            "ENDPOINT_NAME": names.endpoint,
            "VARIANT_NAME": shared.VARIANT_NAME,
            "GROUND_TRUTH_URI": Ref(inputs.ground_truth_uri),
            "MONITORING_URI": Ref(inputs.monitoring_uri),
            "STATISTICS_URI": Ref(inputs.statistics_uri),
            "CONSTRAINTS_URI": Ref(inputs.constraints_uri),
            "PERIOD_SECONDS": str(SCHEDULES[mon.schedule_expression].period),
            "LOOKBACK_HOURS": str(mon.ground_truth_lookback_hours),
        },
        WINDOW_TIMEOUT_SECONDS,
        "Lists the capture and ground-truth files of a monitoring window into manifests",
        skips={
            "CKV_AWS_116": (
                "Step Functions invokes the function synchronously and catches its errors; a "
                "dead-letter queue only ever receives asynchronous events"
            )
        },
    )


def _job_statements(stack: Stack, inputs: Inputs, names: n.Names) -> list[Statement]:
    """Run the monitor job (.sync) with the SageMaker role."""
    base = naming.base(stack.config)
    return [
        iam_policy.allow(
            [sm.CreateProcessingJob, sm.DescribeProcessingJob, sm.StopProcessingJob, sm.AddTags,
             # The .sync integrations read the job's tags (Step Functions developer guide,
             # IAM policies for SageMaker: sagemaker:ListTags).
             sm.ListTags],
            common.arn("sagemaker", f"processing-job/{base}-mon-*"),
            sid="RunMonitorJobs",
        ),
        iam_policy.pass_role(inputs.execution_role_arn, "sagemaker.amazonaws.com", sid="PassSageMakerRole"),
        # .sync integrations manage this fixed-name rule (Step Functions developer guide).
        iam_policy.allow(
            [events_actions.PutTargets, events_actions.PutRule, events_actions.DescribeRule],
            common.arn("events", "rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule"),
            sid="SyncJobEvents",
        ),
    ]


def machine_role(stack: Stack, inputs: Inputs, topic: sns.Topic, window: Any, names: n.Names) -> iam.Role:
    """The monitor state machine's role: the window function, the job, the report, the
    metrics (its namespace only), the topic, and its logs and traces."""
    statements = [
        iam_policy.allow([lambda_actions.InvokeFunction], functions.function_arns(names.monitor_window),
                         sid="FindWindow"),
        *_job_statements(stack, inputs, names),
        iam_policy.allow([s3_actions.GetObject], _objects_arn(inputs.monitoring_uri), sid="ReadMetrics"),
        # PutMetricData supports no resource-level permissions; the namespace is pinned.
        iam_policy.allow(
            [cloudwatch_actions.PutMetricData], "*",
            conditions=Condition(StringEquals("cloudwatch:namespace", naming.metrics_namespace(stack.config))),
            sid="PublishMetrics",
        ),
        iam_policy.allow([sns_actions.Publish], Ref(topic), sid="Notify"),
        # The report, the topic and the execution data are encrypted with the project key.
        iam_policy.allow([kms_actions.Decrypt, kms_actions.GenerateDataKey], inputs.kms_key_arn,
                         sid="UseProjectKey"),
        iam_policy.state_machine_logs_and_traces(),
    ]
    return stack.add(
        iam.Role(
            n.MONITOR_STATES_ROLE,
            RoleName=names.monitor_states_role,
            AssumeRolePolicyDocument=iam_policy.trust("states.amazonaws.com"),
            Policies=[iam_policy.inline_policy("monitor", *statements)],
            Tags=stack.tags(),
        ),
        "Monitor state machine: window function, monitor job, report, metrics, notifications",
    )


def state_machine(stack: Stack, inputs: Inputs, topic: sns.Topic, window: Any, names: n.Names) -> Any:
    """The STANDARD state machine of :mod:`.monitor_definition`, encrypted, logged, traced."""
    role = machine_role(stack, inputs, topic, window, names)
    logs_group = stack.add(
        common.log_group(
            n.MONITOR_LOG_GROUP, stack.config, stack.component, inputs.kms_key_arn,
            stack.config.api.log_retention_days,
            # /aws/vendedlogs/: no resource-policy statement per state machine; the stack's
            # ID: a re-created stack never meets the group a deleted one kept.
            name=Sub(f"/aws/vendedlogs/states/{names.monitor}-${{Suffix}}", Suffix=common.stack_suffix()),
        ),
        "Execution log of the monitor state machine",
    )
    return stack.add(
        common.audited_state_machine(
            n.MONITOR_STATE_MACHINE, names.monitor, GetAtt(role, "Arn"), md.definition(stack.config),
            {
                md.WINDOW_FUNCTION_ARN: GetAtt(window, "Arn"),
                md.IMAGE_URI: inputs.image_uri,
                md.SAGEMAKER_ROLE_ARN: inputs.execution_role_arn,
                md.KMS_KEY_ARN: inputs.kms_key_arn,
                md.NOTIFICATION_TOPIC_ARN: Ref(topic),
            },
            inputs.kms_key_arn, logs_group, stack.tags(),
        ),
        "Monitor state machine: finds the window's files, runs the monitor job, publishes "
        "its metrics; notifies and records a failed run",
    )


def schedule(stack: Stack, inputs: Inputs, machine: Any, names: n.Names) -> scheduler.Schedule:
    """The schedule that starts the monitor state machine, and the role it does it with."""
    role = stack.add(
        iam.Role(
            n.MONITOR_SCHEDULER_ROLE,
            RoleName=names.monitor_scheduler_role,
            # Confused-deputy guard: only this account's schedules may use the role.
            AssumeRolePolicyDocument=iam_policy.trust(
                "scheduler.amazonaws.com",
                conditions=Condition(StringEquals("aws:SourceAccount", Ref("AWS::AccountId"))),
            ),
            Policies=[
                iam_policy.inline_policy(
                    "start-monitor",
                    iam_policy.allow([states_actions.StartExecution], Ref(machine), sid="StartMonitor"),
                    # The schedule's payload is encrypted with the project key, which the
                    # execution role decrypts when the schedule runs.
                    iam_policy.allow([kms_actions.Decrypt], inputs.kms_key_arn, sid="DecryptSchedule"),
                )
            ],
            Tags=stack.tags(),
        ),
        "EventBridge Scheduler's role: start the monitor state machine only",
    )
    return stack.add(
        scheduler.Schedule(
            n.MONITOR_SCHEDULE,
            Name=names.monitor_schedule,
            Description=f"Checks {names.endpoint}'s captured traffic against its baseline",
            ScheduleExpression=stack.config.monitoring.schedule_expression,
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow=scheduler.FlexibleTimeWindow(Mode="OFF"),
            KmsKeyArn=inputs.kms_key_arn,
            State="ENABLED",
            Target=scheduler.Target(
                Arn=Ref(machine),
                RoleArn=GetAtt(role, "Arn"),
                Input=json.dumps({"ScheduledTime": "<aws.scheduler.scheduled-time>"}),
                RetryPolicy=scheduler.RetryPolicy(MaximumRetryAttempts=3, MaximumEventAgeInSeconds=3600),
            ),
        ),
        "Starts the monitor state machine on monitoring.schedule_expression",
    )


def monitor(stack: Stack, inputs: Inputs, topic: sns.Topic, names: n.Names) -> Monitor:
    """The window function, the monitor state machine and its schedule."""
    window = window_function(stack, inputs, names)
    machine = state_machine(stack, inputs, topic, window, names)
    return Monitor(machine=machine, schedule=schedule(stack, inputs, machine, names))
