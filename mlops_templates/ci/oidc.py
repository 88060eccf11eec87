"""Who may assume the CI role: the OIDC issuer, audience and subject claims of the
configured orchestrator, written once for the ``ci-oidc`` stack, the rendered workflows
and the tests that hold one to the other.

GitHub Actions (GitHub docs, "Configuring OpenID Connect in Amazon Web Services" and
"OpenID Connect reference"): issuer ``https://token.actions.githubusercontent.com``,
audience ``sts.amazonaws.com`` for aws-actions/configure-aws-credentials; a job that
names an ``environment`` presents ``repo:<owner>/<repo>:environment:<name>``, any other
job of a push or dispatch on a branch ``repo:<owner>/<repo>:ref:refs/heads/<branch>``
(pull requests present ``repo:<owner>/<repo>:pull_request`` and are never trusted).
Repositories that emit the immutable subject claim put the numeric IDs after the names:
``repo:<owner>@<owner id>/<repo>@<repo id>:...`` (aws-actions/configure-aws-credentials
README, "Immutable subject claims").

GitLab CI (GitLab docs, "Configure OpenID Connect in AWS to retrieve temporary
credentials"): the issuer is the instance URL, the audience the job's ``id_tokens``
``aud`` (documented as the instance URL), the subject
``project_path:<group>/<project>:ref_type:branch:ref:<branch>``.

AWS evaluates only ``aud`` and ``sub`` of these tokens in a trust policy ("Support for
custom claims for OIDC is unavailable in AWS", GitHub's AWS guide): the subjects here are
matched with ``StringEquals``, so no wildcard admits another repository, branch or fork.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_templates.config import Config
from mlops_templates.config_pipeline import GITHUB_ISSUER

#: The audience aws-actions/configure-aws-credentials requests by default.
GITHUB_AUDIENCE = "sts.amazonaws.com"


@dataclass(frozen=True)
class Trust:
    """The identities the CI role trusts."""

    orchestrator: str
    #: The issuer URL (the IAM OIDC provider's URL).
    issuer: str
    audience: str
    #: Every ``sub`` claim the role accepts (StringEquals).
    subjects: tuple[str, ...]
    #: The ``sub`` of the jobs that build, train and deploy to dev (the branch's identity).
    branch_subject: str
    #: The ``sub`` of the production job (GitHub: its environment's; GitLab: the branch's).
    production_subject: str

    @property
    def host(self) -> str:
        """The issuer without ``https://``: the provider ARN's suffix and the prefix of the
        trust policy's condition keys (``<host>:sub``, ``<host>:aud``)."""
        return self.issuer.removeprefix("https://")


def github_subject(config: Config, *, branch: str | None = None, environment: str | None = None) -> str:
    """The ``sub`` claim of a GitHub job on ``branch``, or of one in ``environment``."""
    ci = config.pipeline.ci
    owner, repo = config.pipeline.ci_repository.split("/")
    if ci.owner_id is not None:
        owner, repo = f"{owner}@{ci.owner_id}", f"{repo}@{ci.repository_id}"
    where = f"environment:{environment}" if environment else f"ref:refs/heads/{branch}"
    return f"repo:{owner}/{repo}:{where}"


def gitlab_subject(config: Config, branch: str) -> str:
    """The ``sub`` claim of a GitLab job of a pipeline on ``branch``."""
    return f"project_path:{config.pipeline.ci_repository}:ref_type:branch:ref:{branch}"


def trust(config: Config) -> Trust:
    """The issuer, audience and subjects of ``config``'s CI orchestrator."""
    pipeline = config.pipeline
    ci, branch = pipeline.ci, pipeline.source.branch
    if pipeline.orchestrator == "github":
        on_branch = github_subject(config, branch=branch)
        production = github_subject(config, environment=ci.environment)
        return Trust(
            "github", GITHUB_ISSUER, ci.audience or GITHUB_AUDIENCE,
            (on_branch, production), on_branch, production,
        )
    if pipeline.orchestrator == "gitlab":
        # GitLab's subject has no environment: the protected environment and the
        # protected branch decide who runs the production job.
        on_branch = gitlab_subject(config, branch)
        return Trust("gitlab", ci.gitlab_url, ci.audience or ci.gitlab_url, (on_branch,), on_branch, on_branch)
    raise ValueError("pipeline.orchestrator is codepipeline: no CI identity to trust")
