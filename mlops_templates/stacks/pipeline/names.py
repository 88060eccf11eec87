"""Physical names and ARNs inside the pipeline stack.

The pipeline stack is instantiated once per SageMaker Studio project, so its names
come from the ``SageMakerProjectName`` Parameter instead of ``project.name``:
``<prefix>-${SageMakerProjectName}-<component>``. The CodeBuild build renders the
per-run stacks with ``--project-name $SAGEMAKER_PROJECT_NAME``, so both sides agree
on every name (``<prefix>-<project>-training``, ``<prefix>-<project>-prd-drift``, ...).

Lengths are checked here against the longest project name the Parameter accepts.
The names of the pipeline's artifacts and variables, which the stages and the
buildspecs share, live here too.
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

# Artifacts and the Build action's variable namespace.
SOURCE_OUTPUT = "SourceOutput"
BUILD_OUTPUT = "BuildOutput"
TRAIN_OUTPUT = "TrainOutput"
TRAIN_RESULT = "TrainResult"
BUILD_NAMESPACE = "BuildVariables"
DATA_VARIABLE = "TrainingDataUri"


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
        """``<base>-<component>`` inside ``Fn::Sub``; the component must be in the length
        table, which :meth:`check` validates for the longest project name."""
        naming.kind(component)
        return f"{self.base}-{component}"

    def name(self, component: str) -> Sub:
        return Sub(self.text(component))

    def bucket_text(self, suffix: str) -> str:
        """A bucket name for use inside ``Fn::Sub`` (see ``naming.BUCKET_SUFFIXES``)."""
        return f"{self.base}-${{AWS::AccountId}}-${{AWS::Region}}-{suffix}"

    def bucket(self, suffix: str) -> Sub:
        return Sub(self.bucket_text(suffix))

    def check(self) -> None:
        """Raise :class:`ConfigError` if no project name fits every derived name.

        The longest accepted name is found by validating configs, and config validation
        checks every component and bucket name (``naming.check_lengths``).
        """
        max_project_name_length(self.prefix)


@dataclass(frozen=True)
class DeployedNames(ProjectNames):
    """The names of the pipeline stack deployed as project ``project`` (``make deploy``
    passes ``project.name`` as ``SageMakerProjectName``), as literal text: how another
    stack (``ci-oidc``) names the pipeline's resources without its Parameter."""

    project: str = ""

    @classmethod
    def of(cls, config: config_mod.Config) -> DeployedNames:
        names = cls(config.project.prefix, config.project.name)
        names.check()
        return names

    @property
    def base(self) -> str:
        return f"{self.prefix}-{self.project}"
