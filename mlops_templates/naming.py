"""Logical IDs and physical names.

Physical names follow ``<prefix>-<project>-<component>`` so that two projects in one
account never collide. Every name this library gives a resource is checked against
the AWS length limit of that resource type here, at config-validation time, so a
long project name fails before any template is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_templates.errors import ConfigError

if TYPE_CHECKING:
    from mlops_templates.config import Config

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
}

#: Components named with a fixed suffix, and the limit each must respect.
COMPONENTS: dict[str, str] = {
    "dev": "sagemaker",  # dev endpoint
    "prd": "sagemaker",  # prod endpoint
    "prd-data-quality": "sagemaker",  # monitoring schedule / job definition
    "prd-drift": "alarm",
    "prd-notifications": "sns",
    "prd-pre-traffic": "lambda",  # hook functions and their roles
    "prd-post-traffic": "lambda",
    "prd-api": "iam-role",
    "prd-codedeploy": "iam-role",
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
    "retrain-on-drift": "event-rule",
    "pipeline-failed": "event-rule",
    "workflow": "stack",
    "deploy-dev": "stack",
    "deploy-prd": "stack",
}

#: The pipeline's buckets are named ``<base>-<account>-<region>-<suffix>`` (bucket names
#: are global), so their length depends on the account id and the region's name.
BUCKET_SUFFIXES = ("art", "data", "logs")
ACCOUNT_ID_LENGTH = 12
LONGEST_REGION = 14  # e.g. ap-southeast-2

#: Characters reserved in SageMaker job names for the run id (``-<run id>-<step>``).
RUN_ID_MAX_LENGTH = 24
JOB_SUFFIX_MAX_LENGTH = 11  # e.g. "-preprocess"


def base(config: Config) -> str:
    """``<prefix>-<project>``: the start of every physical name."""
    return f"{config.project.prefix}-{config.project.name}"


def physical_name(config: Config, component: str, limit: str = "sagemaker") -> str:
    """Physical name for ``component``, checked against the limit of ``limit``."""
    name = f"{base(config)}-{component}"
    maximum = LIMITS[limit]
    if len(name) > maximum:
        raise ConfigError(
            f"project.prefix/project.name: the {limit} name '{name}' is {len(name)} "
            f"characters, over the AWS limit of {maximum}; shorten the prefix or name"
        )
    return name


def stack_name(config: Config, stack: str) -> str:
    """CloudFormation stack name for one of this library's stacks."""
    return physical_name(config, stack, "stack")


def check_lengths(config: Config) -> None:
    """Raise :class:`ConfigError` if any name this library derives is too long."""
    for component, limit in COMPONENTS.items():
        physical_name(config, component, limit)
    job_budget = len(base(config)) + 1 + RUN_ID_MAX_LENGTH + JOB_SUFFIX_MAX_LENGTH
    if job_budget > LIMITS["sagemaker"]:
        raise ConfigError(
            f"project.prefix/project.name: '{base(config)}' leaves too little room for "
            f"SageMaker job names (<name>-<run id of up to {RUN_ID_MAX_LENGTH}>-<step> must "
            f"fit in {LIMITS['sagemaker']} characters); keep prefix + name under "
            f"{LIMITS['sagemaker'] - RUN_ID_MAX_LENGTH - JOB_SUFFIX_MAX_LENGTH - 1} characters"
        )
    for suffix in BUCKET_SUFFIXES:
        length = len(base(config)) + 1 + ACCOUNT_ID_LENGTH + 1 + LONGEST_REGION + 1 + len(suffix)
        if length > LIMITS["bucket"]:
            raise ConfigError(
                f"project.prefix/project.name: bucket names '{base(config)}-<account>-<region>-"
                f"{suffix}' can reach {length} characters, over the S3 limit of "
                f"{LIMITS['bucket']}; shorten the prefix or name"
            )
