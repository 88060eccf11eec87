"""The Step Functions role of the training workflow: run the jobs (and, with tuning, the
tuning job), create and register the model, pass the SageMaker role, notify, log, trace.
"""

from __future__ import annotations

from typing import Any

from awacs import events as ev
from awacs import kms, s3, sns
from awacs import sagemaker as sm
from troposphere import Tags, iam

from mlops_templates import iam as iamdoc
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.policies import (
    PipelineResources,
    objects,
    service_role,
)


def states_role(
    logical_id: str, res: PipelineResources, sagemaker_role_arn: Any, tags: Tags, tuning: bool = False
) -> iam.Role:
    """The Step Functions role of the training workflow (with ``tuning``, also of its
    hyperparameter tuning jobs)."""
    names = res.names
    statements = [
        *_workflow_sagemaker_statements(names.base),
        *(_tuning_statements(names.base) if tuning else []),
        iamdoc.pass_role(sagemaker_role_arn, "sagemaker.amazonaws.com", sid="PassSageMakerRole"),
        # .sync integrations manage these fixed-name rules (Step Functions developer guide).
        iamdoc.allow(
            [ev.PutTargets, ev.PutRule, ev.DescribeRule],
            [
                common.arn("events", f"rule/StepFunctionsGetEventsFor{kind}")
                for kind in ("SageMakerTrainingJobsRule", "SageMakerProcessingJobsRule")
            ],
            sid="SyncJobEvents",
        ),
        iamdoc.allow([sns.Publish], res.topic_arn, sid="Notify"),
        iamdoc.allow(
            [s3.GetObject], objects(res.artifact_bucket_arn, "runs/"), sid="ReadRunResults"
        ),
        iamdoc.allow(
            [kms.Decrypt, kms.GenerateDataKey, kms.DescribeKey, kms.CreateGrant],
            res.key_arn,
            sid="UseProjectKey",
        ),
        iamdoc.state_machine_logs_and_traces(),
    ]
    return service_role(
        logical_id, names, "states", "states.amazonaws.com", statements, tags,
        "Step Functions role of the project's training workflow",
    )


def _tuning_statements(base: str) -> list[Any]:
    """``createHyperParameterTuningJob.sync``: run, watch, stop and tag the tuning job, through
    its fixed-name rule (Step Functions developer guide, IAM policies for SageMaker,
    https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html). Its training
    jobs are named after it, so ``RunJobs`` covers ``ReadBestTrainingJob``'s describe."""
    tuning_jobs = common.arn("sagemaker", f"hyper-parameter-tuning-job/{base}-*")
    rule = common.arn("events", "rule/StepFunctionsGetEventsForSageMakerTuningJobsRule")
    return [
        iamdoc.allow(
            [
                sm.CreateHyperParameterTuningJob, sm.DescribeHyperParameterTuningJob,
                sm.StopHyperParameterTuningJob, sm.ListTrainingJobsForHyperParameterTuningJob,
                sm.AddTags, sm.ListTags,
            ],
            tuning_jobs,
            sid="RunTuningJobs",
        ),
        iamdoc.allow([ev.PutTargets, ev.PutRule, ev.DescribeRule], rule, sid="SyncTuningEvents"),
    ]


def _workflow_sagemaker_statements(base: str) -> list[Any]:
    """The workflow's SageMaker calls: run the jobs, create and register the model."""
    return [
        iamdoc.allow(
            [
                sm.CreateTrainingJob,
                sm.DescribeTrainingJob,
                sm.StopTrainingJob,
                sm.CreateProcessingJob,
                sm.DescribeProcessingJob,
                sm.StopProcessingJob,
                sm.AddTags,
                # The .sync integrations read the job's tags (Step Functions developer
                # guide, IAM policies for SageMaker: sagemaker:ListTags).
                sm.ListTags,
            ],
            [
                common.arn("sagemaker", f"training-job/{base}-*"),
                common.arn("sagemaker", f"processing-job/{base}-*"),
            ],
            sid="RunJobs",
        ),
        iamdoc.allow(
            [sm.CreateModel, sm.DescribeModel, sm.AddTags, sm.ListTags],
            common.arn("sagemaker", f"model/{base}-*"),
            sid="CreateModel",
        ),
        iamdoc.allow(
            [sm.CreateModelPackage, sm.DescribeModelPackage, sm.UpdateModelPackage, sm.AddTags],
            [
                common.arn("sagemaker", f"model-package-group/{base}-models"),
                common.arn("sagemaker", f"model-package/{base}-models/*"),
            ],
            sid="RegisterModel",
        ),
    ]
