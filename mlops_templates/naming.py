"""Logical IDs and physical names.

Physical names follow ``<prefix>-<project>-<component>`` so that two projects in one
account never collide. Every name this library gives a resource is checked against
the AWS length limit of that resource type here, at config-validation time, so a
long project name fails before any template is built.
"""

from __future__ import annotations

import re
from typing import Protocol

from mlops_templates import contract
from mlops_templates.errors import ConfigError


class _Project(Protocol):
    prefix: str
    name: str


class Config(Protocol):
    """What naming reads of a config: the project's prefix and name (naming needs
    nothing else, so :mod:`mlops_templates.config` can import it without a loop)."""

    @property
    def project(self) -> _Project: ...

#: Tags on every resource this library creates (beside ``project.tags``): the project's
#: ``<prefix>-<project>`` and the stack component; workflow jobs also carry the run id.
PROJECT_TAG = "mlops:project"
COMPONENT_TAG = "mlops:component"
RUN_ID_TAG = "mlops:run-id"

#: AWS limits on the physical names this library sets.
LIMITS: dict[str, int] = {
    "sagemaker": 63,  # endpoints, jobs, model package groups, schedules
    "state-machine": 80,
    "lambda": 64,
    "sns": 256,
    "alarm": 255,
    "iam-role": 64,
    "codebuild": 150,
    "codepipeline": 100,
    "event-rule": 64,
    "bucket": 63,
    "stack": 128,
    "iam-policy": 128,  # managed policy names
    "tag": 256,  # values of Name tags (VPC resources have no name of their own)
    "schedule": 64,  # EventBridge Scheduler schedules
    "dashboard": 255,  # CloudWatch dashboards
    "tuning-job": 32,  # hyperparameter tuning jobs (CreateHyperParameterTuningJob)
}

#: Components named with a fixed suffix, and the limit each must respect. ``<n>`` stands
#: for a number (checked as two digits).
COMPONENTS: dict[str, str] = {
    "dev": "sagemaker",  # dev endpoint
    "prd": "sagemaker",  # prod endpoint
    "prd-data-quality": "sagemaker",  # Model Monitor's schedule (monitoring.engine model_monitor)
    "prd-drift": "alarm",
    "prd-quality": "alarm",  # the model-quality alarm
    "prd-monitor": "state-machine",  # the monitor state machine (monitoring.engine builtin)
    "prd-monitor-schedule": "schedule",
    "prd-monitor-window": "lambda",  # the function listing a window's files, and its role
    "prd-monitor-states": "iam-role",
    "prd-monitor-scheduler": "iam-role",
    "prd-dashboard": "dashboard",
    "prd-notice-drift": "event-rule",  # deploy-prd's notification rules
    "prd-notice-quality": "event-rule",
    "prd-notice-rollback": "event-rule",
    "prd-notice-api": "event-rule",
    "prd-notifications": "sns",
    "prd-pre-traffic": "lambda",  # hook functions and their roles
    "prd-post-traffic": "lambda",
    "prd-api": "iam-role",
    "prd-codedeploy": "iam-role",
    # The batch stack's state machine (deployment.mode batch|both); the stack has the same
    # name, whose limit (128) is longer.
    "batch": "state-machine",
    "batch-states": "iam-role",
    "batch-upload": "event-rule",  # starts the batch state machine on uploads
    "batch-upload-events": "iam-role",
    "batch-schedule": "schedule",
    "batch-scheduler": "iam-role",
    "batch-drift": "alarm",
    "batch-quality": "alarm",
    "batch-notice-drift": "event-rule",  # the batch alarms' notices on the pipeline's topic
    "batch-notice-quality": "event-rule",
    "notifications": "sns",  # the pipeline's topic
    "models": "sagemaker",  # model package group
    "training": "state-machine",
    "api": "lambda",
    # The pipeline stack (named from the Studio project name the same way).
    "pipeline": "codepipeline",
    "build": "codebuild",
    "train-output": "codebuild",
    "codepipeline": "iam-role",
    "codebuild": "iam-role",
    "cloudformation": "iam-role",
    "sagemaker": "iam-role",
    "states": "iam-role",
    "events": "iam-role",
    "flow-logs": "iam-role",
    "source-push": "event-rule",
    "data-upload": "event-rule",
    "retrain-schedule": "event-rule",
    "retrain-on-alarm": "event-rule",
    "pipeline-failed": "event-rule",
    "run-started": "event-rule",
    "run-succeeded": "event-rule",
    "registry-changed": "event-rule",  # starts the promotion
    "registry-rejected": "event-rule",  # the rejection notice
    "promote": "iam-role",  # the promotion's CodeBuild project (limit 150) and its role
    "launch": "iam-role",  # Service Catalog launch role
    "launch-<n>": "iam-policy",  # ...and its managed policies
    "cloudformation-<n>": "iam-policy",  # the CloudFormation role's managed policies
    "boundary": "iam-policy",  # the permissions boundary of the per-run stacks' roles
    "teardown": "lambda",  # the pipeline's teardown function and its role
    "vpc": "tag",  # the pipeline's VPC, when it creates one
    "private": "tag",
    "private-<n>": "tag",
    "workload": "tag",
    "endpoints": "tag",
    "workflow": "stack",
    "deploy-dev": "stack",
    "deploy-prd": "stack",
    # GitHub Actions / GitLab CI as the orchestrator: the ci-oidc stack and its role.
    "ci-oidc": "stack",
    "ci": "iam-role",
}

#: The pipeline's buckets are named ``<base>-<account>-<region>-<suffix>`` (bucket names
#: are global), so their length depends on the account id and the region's name.
BUCKET_SUFFIXES = ("art", "data", "logs")
#: The studio stack's buckets with ``studio.publish_mode: s3``, named the same way: the
#: project templates and their access logs. Not a project's: ``make destroy`` keeps them.
STUDIO_BUCKET_SUFFIXES = ("tpl", "tlog")
ACCOUNT_ID_LENGTH = 12
LONGEST_REGION = 14  # e.g. ap-southeast-2

#: SageMaker job and model names of the training workflow are
#: ``<base>-<run id>-<step>-<attempt>-<redrive count>``: unique per attempt (SageMaker
#: refuses a name used before in the account and region, so a retried run needs new ones)
#: and still led by the run id. The most characters of each part after ``<base>``, which
#: :func:`check_lengths` adds up. ``-<run id>``: ``[a-z0-9-]``; the pipeline passes 13, the
#: first two groups of its execution id (``stacks/pipeline_build.run_id``).
RUN_ID_MAX_LENGTH = contract.RUN_ID_MAX_LENGTH
#: ``-<step>``: the longest workflow step ("-train", "-stats", "-model").
JOB_SUFFIX_MAX_LENGTH = 6
#: ``-<attempt>``: eight hex digits drawn once per execution (``States.UUID``).
ATTEMPT_ID_LENGTH = 8
#: ``-<redrive count>``: ``$$.Execution.RedriveCount``. Step Functions redrives an
#: execution only while its history has under 25,000 events and each redrive adds at
#: least three (redriven, a state entered, the end), so the count has at most 4 digits.
REDRIVE_COUNT_MAX_DIGITS = 4
ATTEMPT_SUFFIX_MAX_LENGTH = 1 + ATTEMPT_ID_LENGTH + 1 + REDRIVE_COUNT_MAX_DIGITS
#: Characters a workflow job name has after ``<base>``, at most.
JOB_NAME_AFTER_BASE = 1 + RUN_ID_MAX_LENGTH + JOB_SUFFIX_MAX_LENGTH + ATTEMPT_SUFFIX_MAX_LENGTH


def bucket_name(config: Config, suffix: str) -> str:
    """``<base>-${AWS::AccountId}-${AWS::Region}-<suffix>`` for ``Fn::Sub``: a bucket of
    :data:`BUCKET_SUFFIXES` or :data:`STUDIO_BUCKET_SUFFIXES`, whose length
    :func:`check_lengths` checks."""
    if suffix not in (*BUCKET_SUFFIXES, *STUDIO_BUCKET_SUFFIXES):
        raise ValueError(f"naming: no bucket suffix '{suffix}'")
    return f"{base(config)}-${{AWS::AccountId}}-${{AWS::Region}}-{suffix}"


def base(config: Config) -> str:
    """``<prefix>-<project>``: the start of every physical name."""
    return f"{config.project.prefix}-{config.project.name}"


def metrics_namespace(config: Config) -> str:
    """``<prefix>/<project>``: the CloudWatch namespace of the project's own metrics."""
    return f"{config.project.prefix}/{config.project.name}"


#: The monitor's processing jobs are ``<base>-mon-<window end yyyymmddHHMM>-<attempt>-
#: <redrive count>``: 31 characters after ``<base>``, fewer than a workflow job's, so
#: :func:`check_lengths` covers them.
MONITOR_JOB_AFTER_BASE = len("-mon-") + 12 + 1 + ATTEMPT_ID_LENGTH + 1 + REDRIVE_COUNT_MAX_DIGITS


#: The batch state machine's jobs and model are ``<base>-batch-<attempt>-<redrive count>``
#: (the monitor job ``<base>-batch-mon-...``): fewer characters after ``<base>`` than a
#: workflow job's, so :func:`check_lengths` covers them.
BATCH_JOB_AFTER_BASE = len("-batch-mon-") + ATTEMPT_ID_LENGTH + 1 + REDRIVE_COUNT_MAX_DIGITS


def batch_name_format(config: Config, kind: str = "") -> str:
    """``<base>-batch[-<kind>]-{}-{}``: a batch run's model or job name with ``{}`` for the
    attempt id and the redrive count."""
    return f"{base(config)}-batch{'-' + kind if kind else ''}-{{}}-{{}}"


def monitor_job_name_format(config: Config) -> str:
    """``<base>-mon-{}-{}-{}``: a monitor job's name with ``{}`` for the window id, the
    attempt id and the redrive count."""
    return f"{base(config)}-mon-{{}}-{{}}-{{}}"


def job_name_format(config: Config, step: str) -> str:
    """``<base>-{}-<step>-{}-{}``: a workflow job or model name with ``{}`` for the run
    id, the attempt id and the redrive count (``States.Format`` and ``str.format`` alike)."""
    return f"{base(config)}-{{}}-{step}-{{}}-{{}}"


#: Hyperparameter tuning jobs (``training.tuning``) are ``<base>-<attempt>-<redrive count>``:
#: SageMaker allows them 1 to 32 characters, too few for the run id, which their
#: ``mlops:run-id`` tag carries instead (SageMaker API reference, CreateHyperParameterTuningJob:
#: HyperParameterTuningJobName, "The name must have 1 to 32 characters"; the tuning job's tags
#: "are also added to all training jobs that the tuning job launches"). The name leads the
#: names of its training jobs, ``<tuning job>-<nnn>-<8 characters>``, within 63.
TUNING_JOB_AFTER_BASE = ATTEMPT_SUFFIX_MAX_LENGTH


def tuning_job_name_format(config: Config) -> str:
    """``<base>-{}-{}``: a tuning job's name with ``{}`` for the attempt id and the redrive
    count."""
    return f"{base(config)}-{{}}-{{}}"


def check_tuning_job_name(config: Config) -> None:
    """Raise :class:`ConfigError` if tuning job names can pass SageMaker's 32 characters."""
    room = LIMITS["tuning-job"] - TUNING_JOB_AFTER_BASE
    if len(base(config)) > room:
        raise ConfigError(
            f"project.prefix/project.name: '{base(config)}' leaves too little room for "
            f"hyperparameter tuning job names (<name>-<attempt>-<redrive count> must fit in "
            f"{LIMITS['tuning-job']} characters); with training.tuning keep prefix + name "
            f"(with the hyphen between) within {room} characters"
        )


def job_name_max_length(config: Config) -> int:
    """The longest workflow job or model name any accepted run id can produce."""
    return len(base(config)) + JOB_NAME_AFTER_BASE


def kind(component: str) -> str:
    """The kind of name (a key of :data:`LIMITS`) ``component`` is; every name this
    library gives is in :data:`COMPONENTS`, numbered ones as ``<base>-<n>``."""
    numbered = re.sub(r"-\d+$", "-<n>", component)
    for key in (component, numbered):
        if key in COMPONENTS:
            return COMPONENTS[key]
    raise ValueError(f"naming.COMPONENTS has no component '{component}'")


def physical_name(config: Config, component: str) -> str:
    """Physical name for ``component``, checked against the AWS limit of its kind."""
    return _checked(config, component, kind(component))


def _checked(config: Config, component: str, limit: str) -> str:
    name = f"{base(config)}-{component}"
    maximum = LIMITS[limit]
    if len(name) > maximum:
        raise ConfigError(
            f"project.prefix/project.name: the {limit} name '{name}' is {len(name)} "
            f"characters, over the AWS limit of {maximum}; shorten the prefix or name"
        )
    return name


#: Stacks deployed once per account and region for every project of the prefix: named
#: ``<prefix>-<stack>``, not after a project.
ORG_STACKS = frozenset({"account"})


def org_name(config: Config, component: str) -> str:
    """``<prefix>-<component>``: a name shared by every project of the prefix."""
    return f"{config.project.prefix}-{component}"


def stack_name(config: Config, stack: str) -> str:
    """CloudFormation stack name for one of this library's stacks."""
    if stack in ORG_STACKS:
        return org_name(config, stack)
    return _checked(config, stack, "stack")


def check_lengths(config: Config) -> None:
    """Raise :class:`ConfigError` if any name this library derives is too long."""
    for component, limit in COMPONENTS.items():
        _checked(config, component.replace("<n>", "99"), limit)
    if job_name_max_length(config) > LIMITS["sagemaker"]:
        room = LIMITS["sagemaker"] - JOB_NAME_AFTER_BASE
        raise ConfigError(
            f"project.prefix/project.name: '{base(config)}' leaves too little room for "
            f"SageMaker job names (<name>-<run id of up to {RUN_ID_MAX_LENGTH}>-<step>-"
            f"<attempt>-<redrive count> must fit in {LIMITS['sagemaker']} characters); "
            f"keep prefix + name (with the hyphen between) within {room} characters"
        )
    for suffix in (*BUCKET_SUFFIXES, *STUDIO_BUCKET_SUFFIXES):
        length = len(base(config)) + 1 + ACCOUNT_ID_LENGTH + 1 + LONGEST_REGION + 1 + len(suffix)
        if length > LIMITS["bucket"]:
            raise ConfigError(
                f"project.prefix/project.name: bucket names '{base(config)}-<account>-<region>-"
                f"{suffix}' can reach {length} characters, over the S3 limit of "
                f"{LIMITS['bucket']}; shorten the prefix or name"
            )
