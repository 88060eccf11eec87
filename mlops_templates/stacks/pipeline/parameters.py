"""The pipeline stack's Parameters, Condition and parameter groups.

``SageMakerProjectName`` and ``SageMakerProjectId`` come from Studio; the notification
e-mail is optional; the CodeConnections connection ARN is asked for only when the
config names none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from troposphere import Parameter, Ref, Template

from mlops_templates.config import Config
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.names import (
    NAME_PATTERN,
    PROJECT_ID,
    PROJECT_NAME,
    max_project_name_length,
)
from mlops_templates.stacks.pipeline.stack import Stack

NOTIFICATION_EMAIL = "NotificationEmail"
CONNECTION_ARN = "CodeConnectionArn"
HAS_EMAIL = "HasNotificationEmail"
CONNECTION_PATTERN = (
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]+$"
)


@dataclass(frozen=True)
class Inputs:
    """What the other parts read from the Parameters."""

    #: The optional notification e-mail (Parameter ``NotificationEmail``).
    email: Parameter
    #: The source connection: the configured ARN, a ``Ref`` of ``CodeConnectionArn``, or
    #: None when the source is CodeCommit.
    connection_arn: Any | None


def create(stack: Stack) -> Inputs:
    """Add the Parameters, the e-mail Condition and the console's parameter groups."""
    t, source = stack.template, stack.config.pipeline.source
    _project_parameters(t, stack.config.project.prefix)
    email = common.optional_email(
        t, NOTIFICATION_EMAIL, HAS_EMAIL, "E-mail address for approvals and failures, or 'none'"
    )
    groups = [{"Label": {"default": "SageMaker project"}, "Parameters": [PROJECT_NAME, PROJECT_ID]}]
    if _connection_arn(stack.config) is not None and source.connection_arn is None:
        t.add_parameter(
            Parameter(
                CONNECTION_ARN,
                Type="String",
                Description=(
                    f"ARN of the CodeConnections connection to {source.repository} "
                    "(pipeline.source.connection_arn is not set in the config)"
                ),
                MaxLength=256,
                AllowedPattern=CONNECTION_PATTERN,
                ConstraintDescription="the ARN of an available CodeConnections connection",
            )
        )
        groups.append({"Label": {"default": "Source"}, "Parameters": [CONNECTION_ARN]})
    groups.append({"Label": {"default": "Notifications"}, "Parameters": [NOTIFICATION_EMAIL]})
    t.set_metadata(
        {
            "AWS::CloudFormation::Interface": {
                "ParameterGroups": groups,
                "ParameterLabels": {
                    PROJECT_NAME: {"default": "Project name"},
                    PROJECT_ID: {"default": "Project ID"},
                    NOTIFICATION_EMAIL: {"default": "Notification e-mail"},
                },
            }
        }
    )
    return Inputs(email=email, connection_arn=_connection_arn(stack.config))


def _project_parameters(t: Template, prefix: str) -> None:
    """The Parameters Studio passes: the project's name and ID."""
    longest = max_project_name_length(prefix)
    t.add_parameter(
        Parameter(
            PROJECT_NAME,
            Type="String",
            Description=(
                f"Name of the SageMaker project; resources are named {prefix}-<name>-..."
            ),
            MinLength=2,
            MaxLength=longest,
            AllowedPattern=NAME_PATTERN,
            ConstraintDescription=(
                f"2-{longest} characters: lower-case letters, digits and hyphens, starting "
                "with a letter and not ending with a hyphen (the names derived from it must "
                "fit AWS limits)"
            ),
        )
    )
    t.add_parameter(
        Parameter(
            PROJECT_ID,
            Type="String",
            Description="ID of the SageMaker project (Studio passes it)",
            MinLength=1,
            MaxLength=20,
            AllowedPattern=r"^[A-Za-z0-9-]+$",
            ConstraintDescription="1-20 letters, digits and hyphens, e.g. p-abcdef123456",
        )
    )


def _connection_arn(config: Config) -> Any | None:
    source = config.pipeline.source
    # A CI orchestrator checks out the code itself: no source action, no connection.
    if source.provider != "codeconnections" or config.pipeline.orchestrator != "codepipeline":
        return None
    return source.connection_arn or Ref(CONNECTION_ARN)
