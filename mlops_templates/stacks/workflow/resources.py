"""The workflow stack: its Parameters, log group, model package group and the state
machine that runs the definition."""

from __future__ import annotations

from typing import Any

from troposphere import (
    GetAtt,
    Output,
    Parameter,
    Ref,
    Sub,
    Template,
    logs,
    sagemaker,
)

from mlops_templates import naming, regions
from mlops_templates.config import Config
from mlops_templates.config_base import IAM_ROLE_ARN
from mlops_templates.stacks import common
from mlops_templates.stacks.stack import Stack
from mlops_templates.stacks.workflow.definition import definition, substitutions
from mlops_templates.stacks.workflow.names import (
    ARTIFACT_BUCKET,
    COMPONENT,
    KMS_KEY_ARN,
    LOG_GROUP,
    MODEL_PACKAGE_GROUP,
    NOTIFICATION_TOPIC_ARN,
    SAGEMAKER_ROLE_ARN,
    STATE_MACHINE,
    STATES_ROLE_ARN,
)
from mlops_templates.stacks.workflow.tasks import xgboost

ARN_PARTITION = r"arn:aws[a-z-]*"


def _parameters(template: Template) -> None:
    template.add_parameter(
        Parameter(
            KMS_KEY_ARN,
            Type="String",
            Description=(
                "ARN of the project KMS key (log group, state machine, job volumes and outputs)."
            ),
            AllowedPattern=rf"^{ARN_PARTITION}:kms:[a-z0-9-]+:\d{{12}}:key/[a-zA-Z0-9-]{{1,128}}$",
            MaxLength=256,
            ConstraintDescription=(
                "must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>), not an alias"
            ),
        )
    )
    template.add_parameter(
        Parameter(
            ARTIFACT_BUCKET,
            Type="String",
            Description="Name of the artifact bucket; runs write under runs/<RunId>/.",
            AllowedPattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            MaxLength=63,
            ConstraintDescription=(
                "must be an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens)"
            ),
        )
    )
    for name, description in (
        (SAGEMAKER_ROLE_ARN, "ARN of the role SageMaker jobs and models run as."),
        (STATES_ROLE_ARN, "ARN of the role the state machine runs as."),
    ):
        template.add_parameter(
            Parameter(
                name,
                Type="String",
                Description=description,
                AllowedPattern=rf"^{IAM_ROLE_ARN}$",
                MaxLength=2048,
                ConstraintDescription=(
                    "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
                ),
            )
        )
    template.add_parameter(
        Parameter(
            NOTIFICATION_TOPIC_ARN,
            Type="String",
            Description="ARN of the SNS topic told about failed or rejected runs.",
            AllowedPattern=rf"^{ARN_PARTITION}:sns:[a-z0-9-]+:\d{{12}}:[A-Za-z0-9_-]{{1,256}}$",
            MaxLength=1024,
            ConstraintDescription=(
                "must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)"
            ),
        )
    )


def log_group(stack: Stack, name: str) -> logs.LogGroup:
    """The state machine's encrypted log group."""
    return stack.template.add_resource(
        common.log_group(
            LOG_GROUP,
            stack.config,
            COMPONENT,
            Ref(KMS_KEY_ARN),
            stack.config.pipeline.log_retention_days,
            # The /aws/vendedlogs/ prefix keeps Step Functions from adding a statement
            # per state machine to the account's size-limited logs resource policy.
            # The stack's ID in the name: a re-created project never collides with the
            # log group a deleted one kept.
            name=Sub(f"/aws/vendedlogs/states/{name}-${{Suffix}}", Suffix=common.stack_suffix()),
        )
    )


def model_package_group(stack: Stack) -> sagemaker.ModelPackageGroup:
    """The registry of the models that passed the gate."""
    config = stack.config
    return stack.add(
        sagemaker.ModelPackageGroup(
            MODEL_PACKAGE_GROUP,
            ModelPackageGroupName=naming.physical_name(config, "models"),
            ModelPackageGroupDescription=f"Quality-gated models of {naming.base(config)}",
            Tags=stack.tags(),
            # Registered versions are the audit trail of what was deployed: keep them.
            DeletionPolicy=common.RETAIN,
            UpdateReplacePolicy="Retain",
        ),
        "Registry of the models that passed the quality gate; deploy stages and "
        "approvers pick versions from it.",
    )


def state_machine(stack: Stack, name: str, logs_group: logs.LogGroup) -> Any:
    """The STANDARD state machine running the definition, encrypted, logged and traced."""
    config = stack.config
    return stack.add(
        common.audited_state_machine(
            STATE_MACHINE, name, Ref(STATES_ROLE_ARN), definition(config), substitutions(config),
            Ref(KMS_KEY_ARN), logs_group, stack.tags(),
        ),
        "Training workflow the pipeline's Train stage starts once per run.",
    )


def build(config: Config) -> Template:
    """The workflow stack.

    Creates ``AWS::Logs::LogGroup`` (KMS, retention), ``AWS::SageMaker::ModelPackageGroup``
    ``<base>-models`` and ``AWS::StepFunctions::StateMachine`` ``<base>-training``
    (STANDARD, customer-managed KMS encryption, logging, X-Ray tracing).
    """
    stack = Stack.new(
        config,
        COMPONENT,
        "Training workflow: Step Functions state machine and SageMaker model package group",
    )
    _parameters(stack.template)
    images = {}
    if config.monitoring.engine == "model_monitor":
        images["ModelMonitor"] = "model-monitor"
    if xgboost(config):
        images["XGBoost"] = f"xgboost-{config.training.xgboost_version}"
    if images:
        regions.add_mapping(stack.template, images)

    name = naming.physical_name(config, "training")
    logs_group = log_group(stack, name)
    group = model_package_group(stack)
    machine = state_machine(stack, name, logs_group)
    stack.template.add_output(
        [
            Output(
                "StateMachineArn",
                Description="ARN of the training state machine",
                Value=Ref(machine),
            ),
            Output(
                "StateMachineName",
                Description="Name of the training state machine",
                Value=GetAtt(machine, "Name"),
            ),
            Output(
                "ModelPackageGroupArn",
                Description="ARN of the model package group the workflow registers models in",
                Value=GetAtt(group, "ModelPackageGroupArn"),
            ),
            Output(
                "LogGroupName",
                Description="Log group of the state machine",
                Value=Ref(logs_group),
            ),
        ]
    )
    return stack.describe(
        "Step Functions runs SageMaker jobs: preprocess, then "
        + (
            "training beside a Model Monitor baseline, then evaluation"
            if config.monitoring.engine == "model_monitor"
            else "training, then evaluation, which also writes the monitoring baseline"
        )
        + "; a quality gate on the evaluation registers the model in the model package group "
        "and notifies the SNS topic, or notifies it and fails.",
        must=[
            (
                "Job names <base>-<RunId>-<step>-<Attempt>-<RedriveCount> are new for every "
                "execution and redrive, and fit in 63 characters: RunId has at most "
                f"{naming.RUN_ID_MAX_LENGTH} characters of [a-z0-9-]"
            ),
            "Every Task catches all errors into $.Failure, notifies, then fails",
        ],
    )
