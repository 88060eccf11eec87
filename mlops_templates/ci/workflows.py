"""The CI workflow of ``pipeline.orchestrator``, rendered from the Jinja templates beside
this module: ``github.yml.j2`` (GitHub Actions), ``gitlab-ci.yml.j2`` (GitLab CI), and the
build script both share (``build.sh.j2``, the Build project's buildspec with the pipeline
stack's outputs as its environment).

Jobs: build (image, per-run templates, parameters) -> train (deploy the workflow stack,
run it, wait) -> deploy-dev -> deploy-prd behind the approval (GitHub: the production
environment's required reviewers; GitLab: a manual job of the protected environment).
Actions are pinned to full commit SHAs (GitHub: "Security hardening for GitHub Actions",
"Using third-party actions": pinning an action to a full length commit SHA is the only
way to use an action as an immutable release), with the release as a comment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jinja2

from mlops_templates import contract, naming
from mlops_templates.ci import oidc
from mlops_templates.config import Config
from mlops_templates.errors import ConfigError
from mlops_templates.stacks import pipeline_build, run_stacks
from mlops_templates.stacks.ci_oidc import MAX_SESSION_SECONDS
from mlops_templates.stacks.pipeline.builds import (
    BUILD_TIMEOUT_MINUTES,
    CONFIG_FILE,
    CONTAINER_DIR,
    OUT_DIR,
    PYTHON_VERSION,
    RENDER_DIR,
    TRAIN_RESULT_DIR,
)

#: Where the workflows are rendered, under the output directory (``templates/``).
CI_DIR = "ci"
#: The rendered file of each orchestrator, relative to the output directory, and where the
#: user copies it in the project's repository.
FILES = {
    "github": (f"{CI_DIR}/github/mlops.yml", ".github/workflows/mlops.yml"),
    "gitlab": (f"{CI_DIR}/gitlab/.gitlab-ci.yml", ".gitlab-ci.yml"),
}
#: GitHub Actions, pinned to the commit of a release (tag v7.0.1 of actions/checkout, ...).
ACTIONS = {
    "checkout": ("actions/checkout", "3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "setup_python": ("actions/setup-python", "5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "credentials": ("aws-actions/configure-aws-credentials", "e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
    "upload_artifact": ("actions/upload-artifact", "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "download_artifact": ("actions/download-artifact", "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
}
#: A runner image of a fixed release (``ubuntu-latest`` moves under the workflow).
GITHUB_RUNNER = "ubuntu-24.04"
#: GitLab job images: Python for the library, Docker (Alpine) with its daemon for the build.
GITLAB_IMAGES = {"python": f"python:{PYTHON_VERSION}-slim", "docker": "docker:27", "dind": "docker:27-dind"}
#: Days the jobs' artifacts (packaged templates, training output) are kept.
RETENTION_DAYS = 7
BUILD_ARTIFACT = "build-output"
TRAIN_ARTIFACT = "train-result"
#: Minutes a dev deployment may take (an endpoint update is blue/green).
DEV_DEPLOY_MINUTES = 60

_JINJA = jinja2.Environment(
    loader=jinja2.PackageLoader("mlops_templates", "ci"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
_JINJA.globals["gh"] = lambda expression: "${{ " + expression + " }}"


@dataclass(frozen=True)
class DeployJob:
    """A job that deploys one endpoint stack."""

    id: str
    stack: str
    title: str
    needs: tuple[str, ...]
    environment: str
    tier: str
    timeout: int
    manual: bool
    #: The OIDC subject the job presents (GitHub).
    subject: str


def _deploy_jobs(config: Config, trust: oidc.Trust) -> list[DeployJob]:
    deployment = config.endpoints.prd.deployment
    # Production waits for the endpoint's blue/green deployment (bounded by its timeout)
    # and the API function's canary; runners stop a job after 6 hours.
    prd_minutes = min(MAX_SESSION_SECONDS // 60, math.ceil(deployment.maximum_execution_timeout_seconds / 60) + 60)
    github = config.pipeline.orchestrator == "github"
    return [
        DeployJob("deploy-dev", "deploy-dev", "Deploy dev", ("build", "train"), "" if github else "dev",
                  "development", DEV_DEPLOY_MINUTES, False, trust.branch_subject),
        DeployJob("deploy-prd", "deploy-prd", "Deploy production", ("build", "train", "deploy-dev"),
                  config.pipeline.ci.environment, "production", prd_minutes, True, trust.production_subject),
    ]


def build_script(config: Config) -> str:
    """The build job's shell script (the Build project's buildspec commands)."""
    return _JINJA.get_template("build.sh.j2").render(
        module=pipeline_build.__name__,
        container_dir=CONTAINER_DIR,
        render_dir=RENDER_DIR,
        out_dir=OUT_DIR,
        stacks=run_stacks(config),
    ).strip()


def render(config: Config) -> dict[str, str]:
    """``{path under templates/: text}`` of the configured orchestrator's workflow
    (empty when CodePipeline orchestrates)."""
    orchestrator = config.pipeline.orchestrator
    if orchestrator not in FILES:
        return {}
    trust = oidc.trust(config)
    path, destination = FILES[orchestrator]
    template = "github.yml.j2" if orchestrator == "github" else "gitlab-ci.yml.j2"
    text = _JINJA.get_template(template).render(
        base=naming.base(config),
        config_file=CONFIG_FILE,
        repository=config.pipeline.ci_repository,
        branch=config.pipeline.source.branch,
        environment=config.pipeline.ci.environment,
        data_prefix=config.pipeline.data_prefix,
        ci_stack=naming.stack_name(config, "ci-oidc"),
        file_name=destination.rsplit("/", 1)[-1],
        latest=contract.LATEST,
        python_version=PYTHON_VERSION,
        runner=GITHUB_RUNNER,
        images=GITLAB_IMAGES,
        actions={key: f"{repo}@{sha} # {tag}" for key, (repo, sha, tag) in ACTIONS.items()},
        audience=trust.audience,
        default_audience=oidc.GITHUB_AUDIENCE,
        session_seconds=MAX_SESSION_SECONDS,
        timeouts={"build": BUILD_TIMEOUT_MINUTES, "train": MAX_SESSION_SECONDS // 60},
        retention_days=RETENTION_DAYS,
        build_artifact=BUILD_ARTIFACT,
        train_artifact=TRAIN_ARTIFACT,
        out_dir=OUT_DIR,
        train_dir=TRAIN_RESULT_DIR,
        train_output=contract.TRAIN_OUTPUT,
        build_script=build_script(config),
        deploy_jobs=_deploy_jobs(config, trust),
    )
    return {path: text}


def render_one(config: Config, orchestrator: str) -> dict[str, str]:
    """The workflow of ``orchestrator``, which must be the configured one: a workflow for
    another would drive a pipeline stack built without its role."""
    if config.pipeline.orchestrator != orchestrator:
        raise ConfigError(
            f"pipeline.orchestrator is {config.pipeline.orchestrator}: set it to {orchestrator} to render "
            f"the {orchestrator} workflow (the pipeline and ci-oidc stacks are built for the orchestrator)"
        )
    return render(config)
