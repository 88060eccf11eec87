"""Pipeline stack: the Service Catalog product a SageMaker Studio project instantiates.

One stack per project (Parameters ``SageMakerProjectName`` and ``SageMakerProjectId``,
as Studio passes them). It creates:

- a customer-managed KMS key and its alias ``alias/<prefix>-<project>``;
- S3 buckets for pipeline artifacts and training data (KMS, versioned, public access
  blocked, TLS only, access-logged to a third bucket); the data bucket sends events to
  EventBridge;
- an SNS topic (KMS) for approvals and failures, with an optional e-mail subscription;
- an ECR repository for the project's container image (scan on push, immutable tags,
  KMS, lifecycle policy);
- CodeBuild projects ``Build`` (builds and pushes the image, renders and packages the
  per-run stacks, writes their parameters and stores them under ``runs/<RunId>/build/``),
  ``TrainOutput`` and ``Promote``, logging to a KMS log group;
- a CodePipeline (V2): Source → Build → Train (workflow stack, state machine) →
  DeployDev; the model registry drives production: a rule on the project's model package
  group starts ``Promote``, which deploys the newest approved version (:mod:`.promotion`);
- EventBridge rules: new training data, a retraining schedule, the production drift
  alarm and (CodeCommit) pushes start the pipeline; runs that start, fail or end and
  rejected model versions notify the topic;
- one IAM role per service (CodePipeline, CodeBuild, CloudFormation, SageMaker,
  Step Functions, EventBridge), each scoped to the project's resources;
- a custom resource that deletes the per-run stacks when the project is deleted;
- optionally a private VPC with the endpoints SageMaker needs (``network.create_vpc``).

With ``pipeline.orchestrator`` ``github`` or ``gitlab`` the CodeBuild projects, the
CodePipeline, its EventBridge rules and the CodeBuild, CodePipeline and EventBridge roles
are left out: a GitHub Actions workflow or GitLab CI pipeline does their work with the role
of the ``ci-oidc`` stack (:mod:`mlops_templates.stacks.ci_oidc`), which names this stack's
resources by their physical names.

One module per concern: :mod:`.parameters`, :mod:`.storage`, :mod:`.roles` (with
:mod:`.policies` and :mod:`.deploy_role`), :mod:`.builds`, :mod:`.stages`,
:mod:`.rules`, :mod:`.promotion`, :mod:`.teardown`, :mod:`.network`; :mod:`.names` holds the names they
share. Each part adds its resources and returns what the later parts need.
"""

from __future__ import annotations

from typing import Any

from troposphere import GetAtt, Output, Ref, Template, codepipeline

from mlops_templates.config import Config
from mlops_templates.stacks.context import describe, describe_template
from mlops_templates.stacks.pipeline import (
    builds,
    deploy_role,
    network,
    parameters,
    promotion,
    roles,
    rules,
    stages,
    storage,
    teardown,
)
from mlops_templates.stacks.pipeline.builds import (
    BUILD_LOG_GROUP,
    BUILD_PROJECT,
    BUILD_SCRIPT,
    BUILD_TIMEOUT_MINUTES,
    CONFIG_FILE,
    CONTAINER_DIR,
    OUT_DIR,
    PYTHON_VERSION,
    RENDER_DIR,
    TRAIN_OUTPUT_PROJECT,
    TRAIN_RESULT_DIR,
    buildspec,
    train_output_buildspec,
)
from mlops_templates.stacks.pipeline.deploy_role import (
    CLOUDFORMATION_POLICY,
    CLOUDFORMATION_ROLE,
    SAM_EXPANSION,
)
from mlops_templates.stacks.pipeline.names import (
    BUILD_NAMESPACE,
    BUILD_OUTPUT,
    DATA_VARIABLE,
    PROJECT_ID,
    PROJECT_NAME,
    SOURCE_OUTPUT,
    TRAIN_OUTPUT,
    TRAIN_RESULT,
)
from mlops_templates.stacks.pipeline.parameters import (
    CONNECTION_ARN,
    CONNECTION_PATTERN,
    HAS_EMAIL,
    NOTIFICATION_EMAIL,
)
from mlops_templates.stacks.pipeline.roles import (
    CODEBUILD_ROLE,
    EVENTS_ROLE,
    PIPELINE_ROLE,
    SAGEMAKER_ROLE,
    STATES_ROLE,
    Roles,
)
from mlops_templates.stacks.pipeline.rules import (
    DATA_RULE,
    DRIFT_RULE,
    FAILURE_RULE,
    SCHEDULE_RULE,
    SOURCE_RULE,
)
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.stages import PIPELINE, STAGES
from mlops_templates.stacks.pipeline.storage import (
    ARTIFACT_BUCKET,
    ARTIFACT_BUCKET_POLICY,
    DATA_BUCKET,
    DATA_BUCKET_POLICY,
    IMAGES_KEPT,
    KEY,
    KEY_ALIAS,
    LOG_BUCKET,
    LOG_BUCKET_POLICY,
    REPOSITORY,
    SUBSCRIPTION,
    TOPIC,
    TOPIC_POLICY,
    Storage,
)
from mlops_templates.stacks.pipeline.teardown import (
    TEARDOWN,
    TEARDOWN_FUNCTION,
    TEARDOWN_LOG_GROUP,
    TEARDOWN_ROLE,
    TeardownResource,
)

#: Why each resource exists (Metadata Context, read by cfn-lint and reviewers).
WHY: dict[str, str] = {
    **storage.WHY,
    **builds.WHY,
    **stages.WHY,
    **roles.WHY,
    **deploy_role.WHY,
    **rules.WHY,
    **promotion.WHY,
    **teardown.WHY,
    **network.WHY,
}


def build(config: Config) -> Template:
    """The pipeline stack for ``config`` (see the module docstring for its resources)."""
    stack = Stack.of(config)
    inputs = parameters.create(stack)
    key = storage.key(stack)
    store = storage.create(stack, key, inputs.email)
    # GitHub Actions or GitLab CI orchestrating (the ci-oidc stack's role): no CodeBuild,
    # CodePipeline or rules that start it; the stores, service roles, deploy role and
    # teardown are the same.
    orchestrated = config.pipeline.orchestrator == "codepipeline"
    build_logs = builds.log_group(stack, key) if orchestrated else None
    vpc = network.create(stack, key) if config.network.create_vpc else None
    service_roles = roles.create(stack, store, build_logs, inputs.connection_arn)
    pipeline = promote = None
    if build_logs is not None:
        projects = builds.create(stack, store, service_roles, build_logs, vpc)
        pipeline = stages.create(stack, store, service_roles, projects, inputs.connection_arn)
        rules.create(stack, store, service_roles)
        # The registry drives the production endpoint: without one (deployment.mode batch)
        # there is nothing to promote; the batch stack reads the newest approved version.
        if config.deployment.realtime:
            promote = promotion.create(stack, store, service_roles, build_logs)
    teardown.create(stack, key, service_roles.deploy)
    _outputs(stack, store, service_roles, pipeline, vpc)
    if promote is not None:
        stack.template.add_output(
            Output("PromoteProjectName", Description="CodeBuild project that deploys production "
                   "from the model registry", Value=Ref(promote))
        )
    _describe(stack.template, config.pipeline.orchestrator)
    return stack.template


def _outputs(
    stack: Stack,
    store: Storage,
    service_roles: Roles,
    pipeline: codepipeline.Pipeline | None,
    vpc: network.Network | None,
) -> None:
    outputs: dict[str, tuple[str, Any]] = {
        "ArtifactBucketName": ("Bucket of pipeline artifacts and run results", Ref(store.artifact)),
        "DataBucketName": (
            f"Bucket of training data (uploads under {stack.config.pipeline.data_prefix} start a run)",
            Ref(store.data),
        ),
        "KmsKeyArn": ("ARN of the project's KMS key", GetAtt(store.key, "Arn")),
        "NotificationTopicArn": ("ARN of the approval and failure topic", Ref(store.topic)),
        "ImageRepositoryUri": ("URI of the project's ECR repository", GetAtt(store.repository, "RepositoryUri")),
        "CloudFormationRoleArn": ("ARN of the per-run stacks' deploy role", GetAtt(service_roles.deploy.role, "Arn")),
        "SageMakerRoleArn": ("ARN of the SageMaker execution role", GetAtt(service_roles.sagemaker, "Arn")),
        "StatesRoleArn": ("ARN of the Step Functions role", GetAtt(service_roles.states, "Arn")),
    }
    if pipeline is not None:
        outputs = {
            "PipelineName": ("Name of the CodePipeline", Ref(pipeline)),
            **outputs,
            "CodePipelineRoleArn": ("ARN of the CodePipeline role", GetAtt(service_roles.pipeline, "Arn")),
            "CodeBuildRoleArn": ("ARN of the CodeBuild role", GetAtt(service_roles.codebuild, "Arn")),
            "EventsRoleArn": ("ARN of the EventBridge role", GetAtt(service_roles.events, "Arn")),
        }
    if vpc is not None:
        outputs["VpcId"] = ("ID of the project's private VPC", vpc.vpc_id)
        outputs["SubnetIds"] = ("Private subnets of the project's VPC", network.subnet_list(vpc))
        outputs["SecurityGroupId"] = ("Security group of jobs and endpoints", vpc.security_group_id)
    for name, (description, value) in outputs.items():
        stack.template.add_output(Output(name, Description=description, Value=value))


#: The stack's architecture note, per orchestrator.
ARCHITECTURE = {
    "codepipeline": (
        "Per-project MLOps pipeline: a push or a data upload runs CodePipeline, which "
        "builds the image and per-run templates in CodeBuild, trains with the Step "
        "Functions workflow stack and deploys the dev endpoint; approving a version in the "
        "model registry canary-deploys production with the newest approved version"
    ),
    "github": (
        "Per-project MLOps resources a GitHub Actions workflow drives with the ci-oidc "
        "stack's role: it builds the image and per-run templates, trains with the Step "
        "Functions workflow stack, deploys the dev endpoint, waits for the production "
        "environment's reviewers and canary-deploys production"
    ),
    "gitlab": (
        "Per-project MLOps resources a GitLab CI pipeline drives with the ci-oidc stack's "
        "role: it builds the image and per-run templates, trains with the Step Functions "
        "workflow stack, deploys the dev endpoint, waits for the manual production job and "
        "canary-deploys production"
    ),
}


def _describe(template: Template, orchestrator: str) -> None:
    """Say why each resource exists, and what the whole stack is."""
    for logical_id, resource in template.resources.items():
        why = WHY.get(logical_id)
        if why is None and logical_id.startswith(CLOUDFORMATION_POLICY):
            why = deploy_role.POLICY_WHY
        describe(resource, why)
    describe_template(
        template,
        ARCHITECTURE[orchestrator],
        must=[
            (
                "Physical names start with the prefix and SageMakerProjectName; the per-run "
                "stacks rendered by the build derive the same names"
            ),
            "Data at rest is encrypted with the project key",
        ],
    )


__all__ = [
    "ARTIFACT_BUCKET",
    "ARTIFACT_BUCKET_POLICY",
    "BUILD_LOG_GROUP",
    "BUILD_NAMESPACE",
    "BUILD_OUTPUT",
    "BUILD_PROJECT",
    "BUILD_SCRIPT",
    "BUILD_TIMEOUT_MINUTES",
    "CLOUDFORMATION_POLICY",
    "CLOUDFORMATION_ROLE",
    "CODEBUILD_ROLE",
    "CONFIG_FILE",
    "CONNECTION_ARN",
    "CONNECTION_PATTERN",
    "CONTAINER_DIR",
    "DATA_BUCKET",
    "DATA_BUCKET_POLICY",
    "DATA_RULE",
    "DATA_VARIABLE",
    "DRIFT_RULE",
    "EVENTS_ROLE",
    "FAILURE_RULE",
    "HAS_EMAIL",
    "IMAGES_KEPT",
    "KEY",
    "KEY_ALIAS",
    "LOG_BUCKET",
    "LOG_BUCKET_POLICY",
    "NOTIFICATION_EMAIL",
    "OUT_DIR",
    "PIPELINE",
    "PIPELINE_ROLE",
    "PROJECT_ID",
    "PROJECT_NAME",
    "PYTHON_VERSION",
    "RENDER_DIR",
    "REPOSITORY",
    "SAGEMAKER_ROLE",
    "SAM_EXPANSION",
    "SCHEDULE_RULE",
    "SOURCE_OUTPUT",
    "SOURCE_RULE",
    "STAGES",
    "STATES_ROLE",
    "SUBSCRIPTION",
    "TEARDOWN",
    "TEARDOWN_FUNCTION",
    "TEARDOWN_LOG_GROUP",
    "TEARDOWN_ROLE",
    "TOPIC",
    "TOPIC_POLICY",
    "TRAIN_OUTPUT",
    "TRAIN_OUTPUT_PROJECT",
    "TRAIN_RESULT",
    "TRAIN_RESULT_DIR",
    "WHY",
    "TeardownResource",
    "build",
    "buildspec",
    "train_output_buildspec",
]
