"""Physical names and ARNs inside the pipeline stack.

The pipeline stack is instantiated once per SageMaker Studio project, so its names
come from the ``SageMakerProjectName`` Parameter instead of ``project.name``:
``<prefix>-${SageMakerProjectName}-<component>``. The CodeBuild build renders the
per-run stacks with ``--project-name $SAGEMAKER_PROJECT_NAME``, so both sides agree
on every name (``<prefix>-<project>-training``, ``<prefix>-<project>-prd-drift``, ...).

Lengths are checked here against the longest project name the Parameter accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from troposphere import Sub

from mlops_templates import config as config_mod
from mlops_templates import naming
from mlops_templates.errors import ConfigError

PROJECT_NAME = "SageMakerProjectName"
PROJECT_ID = "SageMakerProjectId"

#: SageMaker Studio accepts project names of up to 32 characters.
STUDIO_NAME_MAX_LENGTH = 32
#: The project-name rule of the config file (``project.name``).
NAME_PATTERN = r"^[a-z][a-z0-9-]*[a-z0-9]$"

#: Fixed-suffix components of the pipeline stack and the AWS limit each respects.
COMPONENTS: dict[str, str] = {
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
#: Buckets are named ``<base>-<account>-<region>-<suffix>`` (globally unique).
BUCKET_SUFFIXES = ("art", "data", "logs")
ACCOUNT_ID_LENGTH = 12
LONGEST_REGION = 14  # e.g. ap-southeast-2


@cache
def max_project_name_length(prefix: str) -> int:
    """The longest ``SageMakerProjectName`` whose derived names all fit AWS limits.

    Found by validating candidate configs, so every rule of ``config.py`` and
    ``naming.py`` (including the room SageMaker job names need for the run id) applies.
    """
    for length in range(STUDIO_NAME_MAX_LENGTH, 1, -1):
        try:
            config_mod.parse({"project": {"prefix": prefix, "name": "a" * length}})
        except ConfigError:
            continue
        return length
    raise ConfigError(
        f"project.prefix: '{prefix}' leaves no room for a project name; shorten the prefix"
    )


@dataclass(frozen=True)
class ProjectNames:
    """Names of the pipeline stack's resources, as ``Fn::Sub`` strings."""

    prefix: str

    @classmethod
    def of(cls, config: config_mod.Config) -> ProjectNames:
        names = cls(config.project.prefix)
        names.check()
        return names

    @property
    def base(self) -> str:
        """``<prefix>-${SageMakerProjectName}`` for use inside ``Fn::Sub``."""
        return f"{self.prefix}-${{{PROJECT_NAME}}}"

    def text(self, component: str) -> str:
        return f"{self.base}-{component}"

    def name(self, component: str) -> Sub:
        return Sub(self.text(component))

    def bucket_text(self, suffix: str) -> str:
        """A bucket name, for use inside ``Fn::Sub`` (names are global: account and region)."""
        return f"{self.base}-${{AWS::AccountId}}-${{AWS::Region}}-{suffix}"

    def bucket(self, suffix: str) -> Sub:
        return Sub(self.bucket_text(suffix))

    def check(self) -> None:
        """Raise :class:`ConfigError` if a name could exceed its AWS limit."""
        longest_base = len(self.prefix) + 1 + max_project_name_length(self.prefix)
        for component, limit in COMPONENTS.items():
            length = longest_base + 1 + len(component)
            if length > naming.LIMITS[limit]:
                raise ConfigError(
                    f"project.prefix: the {limit} name '{self.prefix}-<project>-{component}' "
                    f"can reach {length} characters, over the AWS limit of "
                    f"{naming.LIMITS[limit]}; shorten the prefix"
                )
        for suffix in BUCKET_SUFFIXES:
            length = longest_base + 1 + ACCOUNT_ID_LENGTH + 1 + LONGEST_REGION + 1 + len(suffix)
            if length > naming.LIMITS["bucket"]:
                raise ConfigError(
                    f"project.prefix: bucket names '{self.prefix}-<project>-<account>-<region>-"
                    f"{suffix}' can reach {length} characters, over the S3 limit of "
                    f"{naming.LIMITS['bucket']}; shorten the prefix"
                )
