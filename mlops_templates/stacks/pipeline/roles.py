"""The pipeline stack's service roles: one per service, each scoped to the project.

CodePipeline, CodeBuild, SageMaker (the execution role of jobs, models and endpoints),
Step Functions (the training workflow, in :mod:`.states_role`) and EventBridge; the
CloudFormation role that deploys the per-run stacks is in :mod:`.deploy_role`. The statements follow the rules
of :mod:`.policies`: project-scoped ARNs, and only the wildcards it justifies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from awacs import cloudformation as cfn
from awacs import cloudwatch as cw
from awacs import codebuild as cb
from awacs import codecommit as cc
from awacs import codeconnections as ccn
from awacs import codepipeline as cp
from awacs import codestar_connections as csc
from awacs import ecr, kms, logs, s3, states
from awacs.aws import Condition, StringLike
from troposphere import GetAtt, Ref, Tags, iam
from troposphere import logs as log_resources

from mlops_templates import iam as iamdoc
from mlops_templates.stacks import common
from mlops_templates.stacks.common import skip_checkov
from mlops_templates.stacks.pipeline import deploy_role
from mlops_templates.stacks.pipeline.policies import (
    VPC_INTERFACES_REASON,
    PipelineResources,
    key_use,
    objects,
    service_role,
    vpc_network_interfaces,
)
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.states_role import states_role
from mlops_templates.stacks.pipeline.storage import Storage

PIPELINE_ROLE = "CodePipelineRole"
CODEBUILD_ROLE = "CodeBuildRole"
SAGEMAKER_ROLE = "SageMakerRole"
STATES_ROLE = "StatesRole"
EVENTS_ROLE = "EventsRole"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    PIPELINE_ROLE: "Lets CodePipeline run the project's builds, stacks and workflow",
    CODEBUILD_ROLE: "Lets the builds push the image and write packaged templates",
    SAGEMAKER_ROLE: "Execution role of the project's SageMaker jobs, models and endpoints",
    STATES_ROLE: "Lets the training workflow run SageMaker jobs and register models",
    EVENTS_ROLE: "Lets EventBridge rules start the project's pipeline (and its promotion, with a production endpoint)",
}


@dataclass(frozen=True)
class Roles:
    """The service roles, and the project resources they are scoped to.

    ``codebuild``, ``pipeline`` and ``events`` exist only when CodePipeline orchestrates
    (``pipeline.orchestrator: codepipeline``); a CI orchestrator assumes the ``ci-oidc``
    stack's role instead.
    """

    resources: PipelineResources
    sagemaker: iam.Role
    states: iam.Role
    deploy: deploy_role.DeployRole
    codebuild: iam.Role | None = None
    pipeline: iam.Role | None = None
    events: iam.Role | None = None


def create(
    stack: Stack,
    store: Storage,
    build_log_group: log_resources.LogGroup | None,
    connection_arn: Any | None,
) -> Roles:
    """Add one role per service, each scoped to the project's resources (the CodeBuild,
    CodePipeline and EventBridge roles only with a build log group: CodePipeline runs)."""
    net = stack.config.network
    res = _resources(stack, store, build_log_group, connection_arn)
    tags = stack.tags("pipeline")
    sagemaker = stack.add(sagemaker_role(SAGEMAKER_ROLE, replace(res, in_vpc=net.enabled), tags))
    tuning = stack.config.training.tuning.enabled
    states_ = stack.add(states_role(STATES_ROLE, res, GetAtt(sagemaker, "Arn"), tags, tuning))
    deploy = deploy_role.create(stack, replace(res, in_vpc=net.enabled), tags)
    if build_log_group is None:
        return Roles(res, sagemaker, states_, deploy)
    # The Build project runs only in a VPC the config names: a created VPC has no internet
    # access, and the build needs PyPI and Docker Hub.
    codebuild = stack.add(codebuild_role(CODEBUILD_ROLE, replace(res, in_vpc=bool(net.vpc_id)), tags))
    pipeline = stack.add(codepipeline_role(PIPELINE_ROLE, res, GetAtt(deploy.role, "Arn"), tags))
    events = stack.add(events_role(EVENTS_ROLE, res, tags, promotion=stack.config.deployment.realtime))
    return Roles(res, sagemaker, states_, deploy, codebuild, pipeline, events)


def _resources(
    stack: Stack,
    store: Storage,
    build_log_group: log_resources.LogGroup | None,
    connection_arn: Any | None,
) -> PipelineResources:
    cfg, names = stack.config, stack.names
    source = cfg.pipeline.source
    return PipelineResources(
        names=names,
        key_arn=GetAtt(store.key, "Arn"),
        artifact_bucket_arn=GetAtt(store.artifact, "Arn"),
        data_bucket_arn=GetAtt(store.data, "Arn"),
        data_prefix=cfg.pipeline.data_prefix,
        topic_arn=Ref(store.topic),
        repository_arn=GetAtt(store.repository, "Arn"),
        log_group_arn=None if build_log_group is None else GetAtt(build_log_group, "Arn"),
        build_project_arns=[
            common.arn("codebuild", f"project/{names.text(p)}") for p in ("build", "train-output")
        ],
        connection_arn=connection_arn,
        codecommit_repository=source.repository if source.provider == "codecommit" else None,
        subnet_arns=[common.arn("ec2", f"subnet/{subnet}") for subnet in cfg.network.subnet_ids],
    )


def codepipeline_role(
    logical_id: str, res: PipelineResources, cloudformation_role_arn: Any, tags: Tags
) -> iam.Role:
    """The CodePipeline service role: artifacts, builds, stacks, workflow."""
    names = res.names
    statements = [
        iamdoc.allow(
            [s3.GetObject, s3.GetObjectVersion, s3.PutObject],
            objects(res.artifact_bucket_arn),
            sid="PipelineArtifacts",
        ),
        iamdoc.allow(
            [s3.GetBucketVersioning, s3.GetBucketLocation], res.artifact_bucket_arn, sid="ArtifactBucket"
        ),
        key_use(res),
        iamdoc.allow(
            [cb.StartBuild, cb.BatchGetBuilds], res.build_project_arns, sid="RunBuilds"
        ),
        # Production is the promotion's (the registry drives it): not CodePipeline's.
        *deploy_run_stacks(res, ("workflow", "deploy-dev")),
        # ValidateTemplate supports no resource-level permissions.
        iamdoc.allow([cfn.ValidateTemplate], "*", sid="ValidateTemplates"),
        iamdoc.pass_role(cloudformation_role_arn, "cloudformation.amazonaws.com", sid="PassDeployRole"),
        *run_training(res),
        *_source_statements(res),
    ]
    return service_role(
        logical_id, names, "codepipeline", "codepipeline.amazonaws.com", statements, tags,
        "CodePipeline service role of the project's pipeline",
    )


def deploy_run_stacks(
    res: PipelineResources, stacks: tuple[str, ...] = ("workflow", "deploy-dev", "deploy-prd")
) -> list[Any]:
    """Deploy the per-run ``stacks`` with change sets (the role passed to CloudFormation
    does the work): what CodePipeline's deploy actions and the CI role's deploy step call."""
    statements = [
        iamdoc.allow(
            [
                cfn.CreateStack,
                cfn.UpdateStack,
                cfn.DescribeStacks,
                cfn.DescribeStackEvents,
                cfn.CreateChangeSet,
                cfn.DescribeChangeSet,
                cfn.ExecuteChangeSet,
                cfn.DeleteChangeSet,
                cfn.SetStackPolicy,
            ],
            [res.stack_arn(stack) for stack in stacks],
            sid="DeployPerRunStacks",
        ),
        # REPLACE_ON_FAILURE deletes a failed workflow or dev stack before creating it again
        # (never production: its action is CREATE_UPDATE).
        iamdoc.allow(
            [cfn.DeleteStack],
            [res.stack_arn(stack) for stack in ("workflow", "deploy-dev")],
            sid="ReplaceFailedStacks",
        ),
    ]
    if "deploy-prd" in stacks:
        # deploy-prd uses the SAM transform: CloudFormation checks the caller may use it.
        statements.append(
            iamdoc.allow(
                [cfn.CreateChangeSet],
                common.arn("cloudformation", "transform/Serverless-2016-10-31", account="aws"),
                sid="UseSamTransform",
            )
        )
    return statements


def run_training(res: PipelineResources) -> list[Any]:
    """Start the training state machine and follow (or stop) its executions."""
    return [
        iamdoc.allow(
            [states.StartExecution, states.DescribeStateMachine],
            res.state_machine_arn,
            sid="StartTraining",
        ),
        # Execution names are generated per run.
        iamdoc.allow(
            [states.DescribeExecution, states.StopExecution],
            common.arn("states", f"execution:{res.names.text('training')}:*"),
            sid="WatchTraining",
        ),
    ]


def find_training_data(res: PipelineResources) -> Any:
    """List the data prefix: a run on ``latest`` trains on its newest object."""
    return iamdoc.allow(
        [s3.ListBucket],
        res.data_bucket_arn,
        conditions=Condition(StringLike("s3:prefix", f"{res.data_prefix}*")),
        sid="FindTrainingData",
    )


def push_image(res: PipelineResources) -> list[Any]:
    """Log in to the registry and push the run's image (DescribeImages: a retried run
    finds the image an earlier attempt pushed; tags are immutable)."""
    return [
        # GetAuthorizationToken supports no resource-level permissions.
        iamdoc.allow([ecr.GetAuthorizationToken], "*", sid="RegistryLogin"),
        iamdoc.allow(
            [
                ecr.BatchCheckLayerAvailability,
                ecr.BatchGetImage,
                ecr.GetDownloadUrlForLayer,
                ecr.DescribeImages,
                ecr.InitiateLayerUpload,
                ecr.UploadLayerPart,
                ecr.CompleteLayerUpload,
                ecr.PutImage,
            ],
            res.repository_arn,
            sid="PushImage",
        ),
    ]


def _source_statements(res: PipelineResources) -> list[Any]:
    """Reading the source: the CodeConnections connection or the CodeCommit repository."""
    statements: list[Any] = []
    if res.connection_arn is not None:
        # Connections created before the CodeConnections rename keep their
        # codestar-connections ARNs; each ARN needs its own service's action.
        if isinstance(res.connection_arn, str):
            legacy = ":codestar-connections:" in res.connection_arn
            use = [csc.UseConnection] if legacy else [ccn.UseConnection]
        else:
            use = [ccn.UseConnection, csc.UseConnection]
        statements.append(
            iamdoc.allow(use, res.connection_arn, sid="UseSourceConnection")
        )
    if res.codecommit_repository is not None:
        statements.append(
            iamdoc.allow(
                [
                    cc.GetBranch,
                    cc.GetCommit,
                    cc.GetRepository,
                    cc.UploadArchive,
                    cc.GetUploadArchiveStatus,
                    cc.CancelUploadArchive,
                ],
                common.arn("codecommit", res.codecommit_repository),
                sid="ReadSourceRepository",
            )
        )
    return statements


def codebuild_role(logical_id: str, res: PipelineResources, tags: Tags) -> iam.Role:
    """The CodeBuild service role: image push, template packaging, run configuration."""
    names = res.names
    statements = [
        iamdoc.allow(
            [logs.CreateLogStream, logs.PutLogEvents], res.log_group_arn, sid="BuildLogs"
        ),
        iamdoc.allow(
            [s3.GetObject, s3.GetObjectVersion, s3.PutObject],
            objects(res.artifact_bucket_arn),
            sid="ArtifactsAndPackages",
        ),
        iamdoc.allow(
            [s3.GetBucketAcl, s3.GetBucketLocation], res.artifact_bucket_arn, sid="ArtifactBucket"
        ),
        find_training_data(res),
        iamdoc.allow(
            [s3.GetObject], objects(res.data_bucket_arn, res.data_prefix), sid="ReadTrainingData"
        ),
        key_use(res),
        *push_image(res),
    ]
    if res.in_vpc:
        statements += vpc_network_interfaces(res, "codebuild.amazonaws.com")
    role = service_role(
        logical_id, names, "codebuild", "codebuild.amazonaws.com", statements, tags,
        "CodeBuild service role: builds the image and the per-run templates",
    )
    if res.in_vpc:
        skip_checkov(role, {"CKV_AWS_111": VPC_INTERFACES_REASON})
    return role


def sagemaker_role(logical_id: str, res: PipelineResources, tags: Tags) -> iam.Role:
    """The SageMaker execution role of jobs, models, endpoints and the monitor."""
    names = res.names
    buckets = [res.artifact_bucket_arn, res.data_bucket_arn]
    statements = [
        iamdoc.allow(
            [s3.ListBucket, s3.GetBucketLocation], buckets, sid="ProjectBuckets"
        ),
        iamdoc.allow(
            [s3.GetObject, s3.PutObject, s3.DeleteObject],
            [objects(arn) for arn in buckets],
            sid="ProjectObjects",
        ),
        # Training and processing volumes encrypted with the key need a grant.
        iamdoc.allow(
            [kms.Decrypt, kms.Encrypt, kms.GenerateDataKey, kms.DescribeKey, kms.CreateGrant],
            res.key_arn,
            sid="UseProjectKey",
        ),
        # GetAuthorizationToken supports no resource-level permissions.
        iamdoc.allow([ecr.GetAuthorizationToken], "*", sid="RegistryLogin"),
        iamdoc.allow(
            [ecr.BatchCheckLayerAvailability, ecr.BatchGetImage, ecr.GetDownloadUrlForLayer],
            res.repository_arn,
            sid="PullImage",
        ),
        # SageMaker writes to its fixed service log groups (/aws/sagemaker/TrainingJobs, ...).
        iamdoc.allow(
            [logs.CreateLogGroup, logs.CreateLogStream, logs.PutLogEvents, logs.DescribeLogStreams],
            common.arn("logs", "log-group:/aws/sagemaker/*"),
            sid="JobLogs",
        ),
        # Deployment guardrails: "your IAM execution role has permission to perform the
        # cloudwatch:DescribeAlarms action on the auto-rollback alarms" (SageMaker developer
        # guide, deployment guardrails, auto-rollback configuration).
        iamdoc.allow(
            [cw.DescribeAlarms],
            common.arn("cloudwatch", f"alarm:{names.base}-*"),
            sid="ReadRollbackAlarms",
        ),
        # PutMetricData supports no resource-level permissions; the namespace is pinned.
        iamdoc.allow(
            [cw.PutMetricData],
            "*",
            conditions=Condition(StringLike("cloudwatch:namespace", "/aws/sagemaker/*")),
            sid="JobMetrics",
        ),
    ]
    if res.in_vpc:
        statements += vpc_network_interfaces(res, "sagemaker.amazonaws.com")
    role = service_role(
        logical_id, names, "sagemaker", "sagemaker.amazonaws.com", statements, tags,
        "SageMaker execution role of the project's jobs, models and endpoints",
    )
    if res.in_vpc:
        skip_checkov(
            role,
            {
                "CKV_AWS_111": VPC_INTERFACES_REASON,
                "CKV_AWS_109": "SageMaker shares the network interfaces of jobs and endpoints "
                "(CreateNetworkInterfacePermission); the interfaces exist only at run time",
            },
        )
    return role


def events_role(logical_id: str, res: PipelineResources, tags: Tags, promotion: bool = True) -> iam.Role:
    """The EventBridge role that starts this project's pipeline and, with ``promotion`` (a
    production endpoint: ``deployment.mode`` realtime or both), its promotion build; nothing else."""
    statements = [iamdoc.allow([cp.StartPipelineExecution], res.pipeline_arn, sid="StartPipeline")]
    if promotion:
        statements.append(iamdoc.allow(
            [cb.StartBuild], common.arn("codebuild", f"project/{res.names.text('promote')}"), sid="StartPromotion"
        ))
    return service_role(
        logical_id, res.names, "events", "events.amazonaws.com", statements, tags,
        "EventBridge role that starts the project's pipeline" + (" and its promotion" if promotion else ""),
    )
