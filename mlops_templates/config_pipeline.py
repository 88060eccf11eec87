"""``pipeline``: the project's source, orchestrator and CI settings (part of the config
model, :mod:`mlops_templates.config`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from mlops_templates.config_base import (
    _Model,
)


class SourceConfig(_Model):
    #: Where the project's code lives: a CodeConnections repository (GitHub, GitLab,
    #: Bitbucket) or CodeCommit.
    provider: Literal["codeconnections", "codecommit"] = "codeconnections"
    #: CodeConnections only: ARN of an existing, authorized connection.
    connection_arn: Annotated[
        str,
        StringConstraints(pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):"),
    ] | None = None
    #: ``owner/repo`` for CodeConnections; a repository name for CodeCommit.
    repository: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")] = (
        "my-org/abalone-mlops"
    )
    #: Branch whose pushes start the pipeline.
    branch: Annotated[str, StringConstraints(min_length=1, max_length=255)] = "main"

    @model_validator(mode="after")
    def _connection(self) -> SourceConfig:
        if self.provider == "codeconnections" and "/" not in self.repository:
            raise ValueError(
                f"repository '{self.repository}' must be 'owner/repo' for codeconnections"
            )
        return self


#: The OIDC issuer of GitHub Actions tokens (GitHub docs, "Configuring OpenID Connect in
#: Amazon Web Services": provider URL https://token.actions.githubusercontent.com).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
#: A branch name the CI path puts into an OIDC subject claim and a branch filter: no glob
#: or space characters, so both name exactly this branch.
CI_BRANCH_PATTERN = r"^[A-Za-z0-9._/-]+$"


class CiConfig(_Model):
    """GitHub Actions or GitLab CI as the orchestrator (``pipeline.orchestrator``): who may
    assume the ``ci-oidc`` stack's role, and the workflow ``make templates`` renders."""

    #: The repository whose workflow may deploy: `owner/repo` on GitHub, the full project path
    #: (`group/subgroup/project`) on GitLab, spelled as the OIDC subject claim spells it (case
    #: included). Default: `pipeline.source.repository`.
    repository: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$", max_length=255)
    ] | None = None
    #: The environment of the production deployment: a GitHub environment with required
    #: reviewers (the approval), or a GitLab protected environment whose manual job is the
    #: approval.
    environment: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,255}$")] = "production"
    #: GitHub only: the owner's numeric ID, for repositories that emit the immutable subject
    #: claim (`repo:<owner>@<owner_id>/<repo>@<repository_id>:...`); with `repository_id`.
    owner_id: int | None = Field(default=None, ge=1)
    #: GitHub only: the repository's numeric ID, for the immutable subject claim; with
    #: `owner_id`.
    repository_id: int | None = Field(default=None, ge=1)
    #: GitLab only: the instance URL, which is the OIDC issuer (`https://`, no trailing slash).
    gitlab_url: Annotated[
        str, StringConstraints(pattern=r"^https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
    ] = "https://gitlab.com"
    #: The audience (`aud`) of the CI job's ID token; none: `sts.amazonaws.com` on GitHub (the
    #: default of aws-actions/configure-aws-credentials), the instance URL on GitLab (GitLab's
    #: documented value).
    audience: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:/._-]{1,255}$")] | None = None
    #: ARN of the account's existing OIDC provider of the issuer; none: the `ci-oidc` stack
    #: creates it. IAM allows one provider per issuer URL in an account: a second project, or
    #: an account that already trusts the issuer, names the existing one here.
    oidc_provider_arn: Annotated[
        str, StringConstraints(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/[A-Za-z0-9.:/_-]+$")
    ] | None = None

    @model_validator(mode="after")
    def _ids_together(self) -> CiConfig:
        if (self.owner_id is None) != (self.repository_id is None):
            raise ValueError(
                "owner_id and repository_id must be given together (or neither): the immutable "
                "subject claim carries both"
            )
        return self


class PipelineConfig(_Model):
    source: SourceConfig = Field(default_factory=SourceConfig)
    #: What runs the build, training and deployments: CodePipeline (in the pipeline stack), or
    #: a GitHub Actions workflow / GitLab CI pipeline (rendered into `templates/ci/`) that
    #: assumes the `ci-oidc` stack's role with OIDC, without long-lived keys.
    orchestrator: Literal["codepipeline", "github", "gitlab"] = "codepipeline"
    ci: CiConfig = Field(default_factory=CiConfig)
    #: EventBridge schedule expression of periodic retraining.
    retrain_schedule: Annotated[str, StringConstraints(pattern=r"^(rate|cron)\(.+\)$")] = (
        "rate(30 days)"
    )
    #: Whether the retraining schedule is enabled (CodePipeline; a CI orchestrator runs on pushes,
    #: by hand, or on the CI system's own schedules).
    retrain_schedule_enabled: bool = False
    #: The production alarms whose firing starts the pipeline (CodePipeline only): `drift`,
    #: `quality` (builtin monitoring only), both, or none.
    retrain_on: list[Literal["drift", "quality"]] = Field(
        default_factory=lambda: ["drift", "quality"], max_length=2
    )
    #: CodeBuild image of the build stage.
    codebuild_image: str = "aws/codebuild/standard:7.0"
    #: CodeBuild compute type of the build stage.
    codebuild_compute_type: Literal[
        "BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM", "BUILD_GENERAL1_LARGE"
    ] = "BUILD_GENERAL1_SMALL"
    #: Object key prefix in the data bucket whose uploads start a run.
    data_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]*/$")] = "training/"
    #: Retention of the pipeline's build, workflow and flow logs.
    log_retention_days: Literal[30, 60, 90, 180, 365, 400, 545, 731, 1827, 3653] = 365

    @property
    def ci_repository(self) -> str:
        """The repository the CI workflow runs in (``ci.repository``, else the source's)."""
        return self.ci.repository or self.source.repository

    @model_validator(mode="before")
    @classmethod
    def _moved_settings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "retrain_on_drift" in data:
            raise ValueError(
                "retrain_on_drift became retrain_on, the list of production alarms that start "
                "the pipeline: [drift, quality] (the default), [drift] for drift only, [] for none"
            )
        return data

    @field_validator("retrain_on")
    @classmethod
    def _unique_alarms(cls, alarms: list[str]) -> list[str]:
        if len(set(alarms)) != len(alarms):
            raise ValueError(f"retrain_on names an alarm twice ({', '.join(alarms)})")
        return alarms

    @model_validator(mode="after")
    def _ci(self) -> PipelineConfig:
        if self.orchestrator == "codepipeline":
            return self
        if not re.fullmatch(CI_BRANCH_PATTERN, self.source.branch):
            raise ValueError(
                f"source.branch '{self.source.branch}': with orchestrator {self.orchestrator} the "
                "branch is matched exactly by the OIDC subject and the workflow's branch filter; "
                "use letters, digits, '.', '_', '/' and '-' only"
            )
        if self.orchestrator == "github" and self.ci_repository.count("/") != 1:
            raise ValueError(
                f"ci.repository '{self.ci_repository}' must be 'owner/repo' for orchestrator github"
            )
        issuer = GITHUB_ISSUER if self.orchestrator == "github" else self.ci.gitlab_url
        host = issuer.removeprefix("https://")
        arn = self.ci.oidc_provider_arn
        if arn is not None and not arn.endswith(f":oidc-provider/{host}"):
            raise ValueError(
                f"ci.oidc_provider_arn '{arn}' is not the provider of {issuer}: its ARN ends with "
                f"':oidc-provider/{host}'"
            )
        return self
