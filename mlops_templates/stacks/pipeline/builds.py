"""The pipeline stack's CodeBuild projects, their buildspecs, environment and log group.

``Build`` builds and pushes the image, renders and packages the per-run stacks and
writes their parameters; ``TrainOutput`` copies the training workflow's output into a
file the deploy actions read. Both log to a KMS-encrypted log group. The buildspecs
are rendered from the Jinja templates beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from troposphere import GetAtt, Ref, Sub, codebuild, kms, logs

from mlops_templates import contract, promotion
from mlops_templates.config import Config
from mlops_templates.stacks import common, pipeline_build, run_stacks
from mlops_templates.stacks.pipeline import network
from mlops_templates.stacks.pipeline.names import (
    PROJECT_ID,
    PROJECT_NAME,
    SOURCE_OUTPUT,
)
from mlops_templates.stacks.pipeline.parameters import NOTIFICATION_EMAIL
from mlops_templates.stacks.pipeline.roles import Roles
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.storage import Storage

BUILD_LOG_GROUP = "BuildLogGroup"
BUILD_PROJECT = "BuildProject"
TRAIN_OUTPUT_PROJECT = "TrainOutputProject"

CONFIG_FILE = "mlops.yaml"
CONTAINER_DIR = "container"
RENDER_DIR = "build"
OUT_DIR = "build/out"
TRAIN_RESULT_DIR = "train-result"
PYTHON_VERSION = "3.12"
BUILD_TIMEOUT_MINUTES = 60
BUILD_SCRIPT = "mlops_templates/stacks/pipeline_build.py"
#: Where the Build stores the source the promote project runs (a zip, CodeBuild's S3 source).
SOURCE_KEY = "promote/source.zip"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    BUILD_LOG_GROUP: "Encrypted logs of the CodeBuild projects",
    BUILD_PROJECT: "Builds and pushes the image, renders and packages the per-run stacks, "
    "writes their parameters and stores them for the promotion",
    TRAIN_OUTPUT_PROJECT: "Copies the training workflow's output into a file the deploy "
    "actions read",
}

_JINJA = jinja2.Environment(
    loader=jinja2.PackageLoader("mlops_templates", "stacks/pipeline"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


@dataclass(frozen=True)
class Builds:
    """The CodeBuild projects the pipeline's actions run."""

    build: codebuild.Project
    train_output: codebuild.Project


def buildspec(config: Config) -> str:
    """The Build project's buildspec (YAML)."""
    return _JINJA.get_template("buildspec.yml.j2").render(
        base=f"{config.project.prefix}-<project>",
        exported=contract.EXPORTED,
        python_version=PYTHON_VERSION,
        module=pipeline_build.__name__,
        container_dir=CONTAINER_DIR,
        render_dir=RENDER_DIR,
        out_dir=OUT_DIR,
        stacks=run_stacks(config),
        runs_prefix=promotion.RUNS_PREFIX,
        source_key=SOURCE_KEY,
        artifact_files=[f"{s}.yaml" for s in run_stacks(config)]
        + [f"{s}.json" for s in run_stacks(config)]
        + [contract.EXECUTION_INPUT],
    )


def train_output_buildspec(config: Config) -> str:
    """The TrainOutput project's buildspec (YAML)."""
    return _JINJA.get_template("train_output_buildspec.yml.j2").render(
        base=f"{config.project.prefix}-<project>",
        python_version=PYTHON_VERSION,
        source_artifact=SOURCE_OUTPUT,
        script=BUILD_SCRIPT,
        out_dir=TRAIN_RESULT_DIR,
        train_output=contract.TRAIN_OUTPUT,
    )


def log_group(stack: Stack, project_key: kms.Key) -> logs.LogGroup:
    """The builds' log group (the CodeBuild role is scoped to it, so it comes first)."""
    cfg, names = stack.config, stack.names
    group = stack.add(
        common.log_group(
            BUILD_LOG_GROUP,
            cfg,
            "pipeline",
            project_key,
            cfg.pipeline.log_retention_days,
            # The stack's ID in the name: a re-created project never collides with the
            # log group a deleted one kept.
            name=Sub(
                f"/{names.prefix}/${{{PROJECT_NAME}}}/codebuild-${{Suffix}}",
                Suffix=common.stack_suffix(),
            ),
        )
    )
    group.Tags = stack.tags("pipeline")
    return group


def create(
    stack: Stack,
    store: Storage,
    roles: Roles,
    build_log_group: logs.LogGroup,
    vpc: network.Network | None,
) -> Builds:
    """Add the Build and TrainOutput projects, run by the CodeBuild role."""
    variables = _environment(stack, store, roles, vpc)
    build = _build_project(stack, store.key, build_log_group, roles.codebuild, variables)
    train_output = _train_output_project(stack, store.key, build_log_group, roles.codebuild)
    return Builds(stack.add(build), stack.add(train_output))


def _environment(
    stack: Stack, store: Storage, roles: Roles, vpc: network.Network | None
) -> list[codebuild.EnvironmentVariable]:
    """The Build project's environment (``contract.STACK_ENV``)."""
    values: dict[str, Any] = {
        "PROJECT_PREFIX": stack.config.project.prefix,
        "SAGEMAKER_PROJECT_NAME": Ref(PROJECT_NAME),
        "SAGEMAKER_PROJECT_ID": Ref(PROJECT_ID),
        "CONFIG_FILE": CONFIG_FILE,
        "ARTIFACT_BUCKET": Ref(store.artifact),
        "DATA_BUCKET": Ref(store.data),
        "DATA_PREFIX": stack.config.pipeline.data_prefix,
        "KMS_KEY_ARN": roles.resources.key_arn,
        "SAGEMAKER_ROLE_ARN": GetAtt(roles.sagemaker, "Arn"),
        "STATES_ROLE_ARN": GetAtt(roles.states, "Arn"),
        "NOTIFICATION_TOPIC_ARN": Ref(store.topic),
        "NOTIFICATION_EMAIL": Ref(NOTIFICATION_EMAIL),
        "IMAGE_REPOSITORY_NAME": Ref(store.repository),
        "IMAGE_REPOSITORY_URI": GetAtt(store.repository, "RepositoryUri"),
    }
    if vpc is not None:
        values["SUBNET_IDS"] = network.subnet_list(vpc)
        values["SECURITY_GROUP_IDS"] = vpc.security_group_id
    return [
        codebuild.EnvironmentVariable(Name=name, Type="PLAINTEXT", Value=value)
        for name, value in values.items()
    ]


def _build_project(
    stack: Stack,
    project_key: kms.Key,
    build_log_group: logs.LogGroup,
    role: Any,
    variables: list[codebuild.EnvironmentVariable],
) -> codebuild.Project:
    cfg, net, names = stack.config.pipeline, stack.config.network, stack.names
    build = codebuild.Project(
        BUILD_PROJECT,
        Name=names.name("build"),
        Description=Sub(
            f"Builds the image and the per-run templates of {names.base}"
        ),
        ServiceRole=GetAtt(role, "Arn"),
        Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
        Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=buildspec(stack.config)),
        Environment=codebuild.Environment(
            Type="LINUX_CONTAINER",
            ComputeType=cfg.codebuild_compute_type,
            Image=cfg.codebuild_image,
            ImagePullCredentialsType="CODEBUILD",
            PrivilegedMode=True,
            EnvironmentVariables=variables,
        ),
        EncryptionKey=GetAtt(project_key, "Arn"),
        LogsConfig=codebuild.LogsConfig(
            CloudWatchLogs=codebuild.CloudWatchLogs(
                Status="ENABLED", GroupName=Ref(build_log_group), StreamName="build"
            )
        ),
        TimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
        QueuedTimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
        Tags=stack.tags("pipeline"),
    )
    common.skip_checkov(
        build,
        {
            # No CloudFormation check has this ID yet (checkov's Terraform check does);
            # the suppression records the decision where policy tools look for it.
            "CKV_AWS_316": "docker build and push run in the build: Docker in CodeBuild needs "
            "privileged mode. The build runs only this repository's buildspec, embedded in the "
            "project, on a curated image",
        },
    )
    if net.vpc_id:
        build.VpcConfig = codebuild.VpcConfig(
            VpcId=net.vpc_id,
            Subnets=list(net.subnet_ids),
            SecurityGroupIds=list(net.security_group_ids),
        )
    return build


def _train_output_project(
    stack: Stack, project_key: kms.Key, build_log_group: logs.LogGroup, role: Any
) -> codebuild.Project:
    names = stack.names
    return codebuild.Project(
        TRAIN_OUTPUT_PROJECT,
        Name=names.name("train-output"),
        Description=Sub(f"Extracts the training output of {names.base} for the deploy stages"),
        ServiceRole=GetAtt(role, "Arn"),
        Artifacts=codebuild.Artifacts(Type="CODEPIPELINE"),
        Source=codebuild.Source(Type="CODEPIPELINE", BuildSpec=train_output_buildspec(stack.config)),
        Environment=codebuild.Environment(
            Type="LINUX_CONTAINER",
            ComputeType="BUILD_GENERAL1_SMALL",
            Image=stack.config.pipeline.codebuild_image,
            ImagePullCredentialsType="CODEBUILD",
            PrivilegedMode=False,
        ),
        EncryptionKey=GetAtt(project_key, "Arn"),
        LogsConfig=codebuild.LogsConfig(
            CloudWatchLogs=codebuild.CloudWatchLogs(
                Status="ENABLED", GroupName=Ref(build_log_group), StreamName="train-output"
            )
        ),
        TimeoutInMinutes=10,
        QueuedTimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
        Tags=stack.tags("pipeline"),
    )
