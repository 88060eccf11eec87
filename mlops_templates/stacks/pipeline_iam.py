"""IAM roles of the pipeline stack: one role per service, scoped to the project.

Every statement names the project's own resources (ARNs built with ``Fn::Sub`` and
``SageMakerProjectName``). Where AWS requires a wildcard, the statement's comment
says why, and :data:`JUSTIFIED_WILDCARDS` lists the pattern with its reason, so a
test can reject any wildcard that is not on the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from awacs import awslambda, ec2, ecr, kms, logs, s3, sns, states, xray
from awacs import cloudformation as cfn
from awacs import cloudwatch as cw
from awacs import codebuild as cb
from awacs import codecommit as cc
from awacs import codeconnections as ccn
from awacs import codepipeline as cp
from awacs import codestar_connections as csc
from awacs import events as ev
from awacs import sagemaker as sm
from awacs.aws import Condition, ForAnyValueStringLike, StringEquals, StringLike
from troposphere import GetAtt, Join, Ref, Sub, Tags, iam

from mlops_templates import iam as iamdoc
from mlops_templates.permissions import grants, scopes
from mlops_templates.stacks import common
from mlops_templates.stacks.common import skip_checkov
from mlops_templates.stacks.pipeline_names import ProjectNames, max_project_name_length

_BASE = r"[a-z][a-z0-9-]*-\$\{SageMakerProjectName\}"

#: Every wildcard resource this module grants, as a regular expression over the
#: resource's text (``Fn::Sub`` string, or ``<Logical.Arn>/...`` for joined ARNs),
#: with the reason AWS requires the wildcard. A test rejects any other wildcard.
JUSTIFIED_WILDCARDS: tuple[tuple[str, str], ...] = (
    (
        r"^\*$",
        (
            "the action supports no resource-level permissions (describe, log delivery, X-Ray, "
            "registry login, ValidateTemplate, CreateKey, network-interface creation); "
            "conditions narrow it where AWS offers condition keys"
        ),
    ),
    (r":sagemaker:.*:(model|endpoint-config|data-quality-job-definition)/\*$",
     "CloudFormation generates these SageMaker names so that replacements never collide"),
    (rf":states:.*:execution:{_BASE}-training:\*$", "execution names are generated per run"),
    (r":rule/StepFunctionsGetEventsFor", "fixed rule names of Step Functions .sync integrations"),
    (r":scalable-target/\*$", "Application Auto Scaling generates scalable-target IDs"),
    (r"::/(restapis|usageplans|apikeys|tags)/\*$", "API Gateway generates API, usage plan and key IDs"),
    (r":deploymentconfig:\*$", "CodeDeploy's predefined Lambda deployment configurations"),
    (r":network-interface/\*$", "interfaces are created at run time; conditions pin service and subnets"),
    (r":kms:.*:key/\*$", "key IDs are generated; tag conditions limit it to the per-run stacks' keys"),
    (r":iam::.*:role/[a-z][a-z0-9-]*-\*$",
     "CloudFormation generates (and may shorten) per-run role names; tag conditions scope them"),
    (r"^<(ArtifactBucket|DataBucket)\.Arn>/[A-Za-z0-9_./-]*\*$", "objects of the project's own buckets"),
    (r":log-group:/aws/sagemaker/\*$", "SageMaker writes to its fixed service log groups"),
    (rf":log-group:\*{_BASE}-\*$", "log groups of the per-run stacks carry the project's name"),
    (rf":stack/{_BASE}-(workflow|deploy-dev|deploy-prd)/\*$", "a stack ARN ends with its generated ID"),
    (rf":model-package/{_BASE}-models/\*$", "model package versions are numbered by SageMaker"),
    (rf"(training-job|processing-job|model|endpoint|model-package-group|monitoring-schedule)/{_BASE}-\*$",
     "job, model and endpoint names carry the project's name and a per-run or per-stage suffix"),
    (
        (
            rf":(stateMachine|function|application|deploymentgroup):{_BASE}-\*$"
            rf"|:alarm:(TargetTracking-endpoint/)?{_BASE}-\*$|:sns:.*:{_BASE}-\*$"
        ),
        "names the per-run stacks derive from the project's name",
    ),
)


@dataclass
class PipelineResources:
    """ARNs and names of the pipeline stack's resources the roles are scoped to."""

    names: ProjectNames
    key_arn: Any
    artifact_bucket_arn: Any
    data_bucket_arn: Any
    data_prefix: str
    topic_arn: Any
    repository_arn: Any
    log_group_arn: Any
    build_project_arns: list[Any]
    connection_arn: Any | None
    codecommit_repository: str | None
    subnet_arns: list[Any] = field(default_factory=list)
    in_vpc: bool = False

    @property
    def pipeline_arn(self) -> Sub:
        return common.arn("codepipeline", self.names.text("pipeline"))

    @property
    def state_machine_arn(self) -> Sub:
        return common.arn("states", f"stateMachine:{self.names.text('training')}")

    def stack_arn(self, stack: str) -> Sub:
        return common.arn("cloudformation", f"stack/{self.names.text(stack)}/*")


VPC_INTERFACES_REASON = (
    "Jobs in the project's subnets need network interfaces created at run time; "
    "ec2:CreateNetworkInterface and the Describe calls support no resource-level scoping "
    "to interfaces that do not exist yet"
)


def _objects(bucket_arn: Any, prefix: str = "") -> Join:
    return Join("", [bucket_arn, f"/{prefix}*"])


def _role(
    logical_id: str,
    names: ProjectNames,
    component: str,
    service: str,
    statements: Sequence[Any],
    tags: Tags,
    description: str,
) -> iam.Role:
    return iam.Role(
        logical_id,
        RoleName=names.name(component),
        Description=description,
        AssumeRolePolicyDocument=iamdoc.trust(service),
        Policies=[iamdoc.inline_policy(component, *statements)],
        Tags=tags,
    )


def _key_use(res: PipelineResources, *extra: Any) -> Any:
    return iamdoc.allow(
        [kms.Decrypt, kms.Encrypt, kms.GenerateDataKey, kms.DescribeKey, *extra],
        res.key_arn,
        sid="UseProjectKey",
    )


def codepipeline_role(
    logical_id: str, res: PipelineResources, cloudformation_role_arn: Any, tags: Tags
) -> iam.Role:
    """The CodePipeline service role: artifacts, builds, stacks, workflow, approval."""
    names = res.names
    statements = [
        iamdoc.allow(
            [s3.GetObject, s3.GetObjectVersion, s3.PutObject],
            _objects(res.artifact_bucket_arn),
            sid="PipelineArtifacts",
        ),
        iamdoc.allow(
            [s3.GetBucketVersioning, s3.GetBucketLocation], res.artifact_bucket_arn, sid="ArtifactBucket"
        ),
        _key_use(res),
        iamdoc.allow(
            [cb.StartBuild, cb.BatchGetBuilds], res.build_project_arns, sid="RunBuilds"
        ),
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
            [res.stack_arn(stack) for stack in ("workflow", "deploy-dev", "deploy-prd")],
            sid="DeployPerRunStacks",
        ),
        # REPLACE_ON_FAILURE deletes a failed workflow or dev stack before creating it again
        # (never production: its action is CREATE_UPDATE).
        iamdoc.allow(
            [cfn.DeleteStack],
            [res.stack_arn(stack) for stack in ("workflow", "deploy-dev")],
            sid="ReplaceFailedStacks",
        ),
        # deploy-prd uses the SAM transform: CloudFormation checks the caller may use it.
        iamdoc.allow(
            [cfn.CreateChangeSet],
            common.arn("cloudformation", "transform/Serverless-2016-10-31", account="aws"),
            sid="UseSamTransform",
        ),
        # ValidateTemplate supports no resource-level permissions.
        iamdoc.allow([cfn.ValidateTemplate], "*", sid="ValidateTemplates"),
        iamdoc.pass_role(cloudformation_role_arn, "cloudformation.amazonaws.com", sid="PassDeployRole"),
        iamdoc.allow(
            [states.StartExecution, states.DescribeStateMachine],
            res.state_machine_arn,
            sid="StartTraining",
        ),
        # Execution names are generated per run.
        iamdoc.allow(
            [states.DescribeExecution, states.StopExecution],
            common.arn("states", f"execution:{names.text('training')}:*"),
            sid="WatchTraining",
        ),
        iamdoc.allow([sns.Publish], res.topic_arn, sid="ApprovalNotifications"),
    ]
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
    return _role(
        logical_id, names, "codepipeline", "codepipeline.amazonaws.com", statements, tags,
        "CodePipeline service role of the project's pipeline",
    )


def codebuild_role(logical_id: str, res: PipelineResources, tags: Tags) -> iam.Role:
    """The CodeBuild service role: image push, template packaging, run configuration."""
    names = res.names
    statements = [
        iamdoc.allow(
            [logs.CreateLogStream, logs.PutLogEvents], res.log_group_arn, sid="BuildLogs"
        ),
        iamdoc.allow(
            [s3.GetObject, s3.GetObjectVersion, s3.PutObject],
            _objects(res.artifact_bucket_arn),
            sid="ArtifactsAndPackages",
        ),
        iamdoc.allow(
            [s3.GetBucketAcl, s3.GetBucketLocation], res.artifact_bucket_arn, sid="ArtifactBucket"
        ),
        iamdoc.allow(
            [s3.ListBucket],
            res.data_bucket_arn,
            conditions=Condition(StringLike("s3:prefix", f"{res.data_prefix}*")),
            sid="FindTrainingData",
        ),
        iamdoc.allow(
            [s3.GetObject], _objects(res.data_bucket_arn, res.data_prefix), sid="ReadTrainingData"
        ),
        _key_use(res),
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
    if res.in_vpc:
        statements += _vpc_network_interfaces(res, "codebuild.amazonaws.com")
    role = _role(
        logical_id, names, "codebuild", "codebuild.amazonaws.com", statements, tags,
        "CodeBuild service role: builds the image and the per-run templates",
    )
    if res.in_vpc:
        skip_checkov(role, {"CKV_AWS_111": VPC_INTERFACES_REASON})
    return role


def _vpc_network_interfaces(res: PipelineResources, service: str) -> list[Any]:
    """Network-interface permissions of a service that runs in the project's subnets."""
    # EC2 describe calls and network-interface creation support no resource-level permissions.
    describe = [
        ec2.CreateNetworkInterface,
        ec2.DeleteNetworkInterface,
        ec2.DescribeNetworkInterfaces,
        ec2.DescribeDhcpOptions,
        ec2.DescribeSubnets,
        ec2.DescribeSecurityGroups,
        ec2.DescribeVpcs,
    ]
    if service != "codebuild.amazonaws.com":
        return [
            iamdoc.allow(
                [*describe, ec2.CreateNetworkInterfacePermission, ec2.DeleteNetworkInterfacePermission],
                "*",
                sid="VpcNetworkInterfaces",
            )
        ]
    return [
        iamdoc.allow(describe, "*", sid="VpcNetworkInterfaces"),
        # CodeBuild attaches interfaces created at run time; the conditions pin them to
        # CodeBuild and the configured subnets (CodeBuild user guide, VPC support).
        iamdoc.allow(
            [ec2.CreateNetworkInterfacePermission],
            common.arn("ec2", "network-interface/*"),
            conditions=Condition(
                [
                    StringEquals("ec2:AuthorizedService", service),
                    ForAnyValueStringLike("ec2:Subnet", res.subnet_arns),
                ]
            ),
            sid="AttachToProjectSubnets",
        ),
    ]


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
            [_objects(arn) for arn in buckets],
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
        statements += _vpc_network_interfaces(res, "sagemaker.amazonaws.com")
    role = _role(
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


def states_role(
    logical_id: str, res: PipelineResources, sagemaker_role_arn: Any, tags: Tags
) -> iam.Role:
    """The Step Functions role of the training workflow."""
    names = res.names
    base = names.base
    statements = [
        iamdoc.allow(
            [
                sm.CreateTrainingJob,
                sm.DescribeTrainingJob,
                sm.StopTrainingJob,
                sm.CreateProcessingJob,
                sm.DescribeProcessingJob,
                sm.StopProcessingJob,
                sm.AddTags,
                # The .sync integrations read the job's tags (Step Functions developer
                # guide, IAM policies for SageMaker: sagemaker:ListTags).
                sm.ListTags,
            ],
            [
                common.arn("sagemaker", f"training-job/{base}-*"),
                common.arn("sagemaker", f"processing-job/{base}-*"),
            ],
            sid="RunJobs",
        ),
        iamdoc.allow(
            [sm.CreateModel, sm.DescribeModel, sm.AddTags, sm.ListTags],
            common.arn("sagemaker", f"model/{base}-*"),
            sid="CreateModel",
        ),
        iamdoc.allow(
            [sm.CreateModelPackage, sm.DescribeModelPackage, sm.UpdateModelPackage, sm.AddTags],
            [
                common.arn("sagemaker", f"model-package-group/{base}-models"),
                common.arn("sagemaker", f"model-package/{base}-models/*"),
            ],
            sid="RegisterModel",
        ),
        iamdoc.pass_role(sagemaker_role_arn, "sagemaker.amazonaws.com", sid="PassSageMakerRole"),
        # .sync integrations manage these fixed-name rules (Step Functions developer guide).
        iamdoc.allow(
            [ev.PutTargets, ev.PutRule, ev.DescribeRule],
            [
                common.arn("events", f"rule/StepFunctionsGetEventsFor{kind}")
                for kind in ("SageMakerTrainingJobsRule", "SageMakerProcessingJobsRule")
            ],
            sid="SyncJobEvents",
        ),
        iamdoc.allow([sns.Publish], res.topic_arn, sid="Notify"),
        iamdoc.allow(
            [s3.GetObject], _objects(res.artifact_bucket_arn, "runs/"), sid="ReadRunResults"
        ),
        iamdoc.allow(
            [kms.Decrypt, kms.GenerateDataKey, kms.DescribeKey, kms.CreateGrant],
            res.key_arn,
            sid="UseProjectKey",
        ),
        # Log delivery and X-Ray APIs support no resource-level permissions.
        iamdoc.allow(
            [
                logs.CreateLogDelivery,
                logs.GetLogDelivery,
                logs.UpdateLogDelivery,
                logs.DeleteLogDelivery,
                logs.ListLogDeliveries,
                logs.PutResourcePolicy,
                logs.DescribeResourcePolicies,
                logs.DescribeLogGroups,
                xray.PutTraceSegments,
                xray.PutTelemetryRecords,
                xray.GetSamplingRules,
                xray.GetSamplingTargets,
            ],
            "*",
            sid="LogsAndTraces",
        ),
    ]
    return _role(
        logical_id, names, "states", "states.amazonaws.com", statements, tags,
        "Step Functions role of the project's training workflow",
    )


def events_role(logical_id: str, res: PipelineResources, tags: Tags) -> iam.Role:
    """The EventBridge role that starts this project's pipeline, and nothing else."""
    statements = [
        iamdoc.allow([cp.StartPipelineExecution], res.pipeline_arn, sid="StartPipeline")
    ]
    return _role(
        logical_id, res.names, "events", "events.amazonaws.com", statements, tags,
        "EventBridge role that starts the project's pipeline",
    )


#: Logical-ID prefix of the CloudFormation role's managed policies: its generated
#: statements outgrow IAM's 10,240-character limit on a role's inline policies.
CLOUDFORMATION_POLICY = "CloudFormationPolicy"


def cloudformation_role(
    logical_id: str,
    res: PipelineResources,
    run_types: set[str],
    tags: Tags,
) -> tuple[iam.Role, list[iam.ManagedPolicy]]:
    """The CloudFormation role that deploys the workflow, deploy-dev and deploy-prd
    stacks, and the managed policies that hold its permissions.

    Its statements are generated (``permissions.grants``): for every resource type of the
    per-run stacks (``run_types``, the SAM template's after its expansion), what
    CloudFormation's handler of that type calls, scoped to this project's names.
    """
    names = res.names
    scope = scopes.run_scope(names.base, res.key_arn, res.artifact_bucket_arn)
    statements = grants.statements(run_types, scope)
    if res.in_vpc:
        # Models and jobs in a VPC: SageMaker checks the caller may describe the network.
        statements.append(
            iamdoc.allow(
                [ec2.DescribeSubnets, ec2.DescribeSecurityGroups, ec2.DescribeVpcs],
                "*",
                sid="DescribeNetwork",
            )
        )
    role = iam.Role(
        logical_id,
        RoleName=names.name("cloudformation"),
        Description="CloudFormation role that deploys the project's workflow, deploy-dev and "
        "deploy-prd stacks",
        AssumeRolePolicyDocument=iamdoc.trust("cloudformation.amazonaws.com"),
        Tags=tags,
    )
    lengths = {"SageMakerProjectName": max_project_name_length(names.prefix)}
    policies = []
    for index, part in enumerate(iamdoc.pack(statements, lengths=lengths), start=1):
        policies.append(
            iam.ManagedPolicy(
                f"{CLOUDFORMATION_POLICY}{index}",
                ManagedPolicyName=names.name(f"cloudformation-{index}"),
                Description=Sub(
                    f"Deploys the per-run stacks of {names.base} ({index}): generated from "
                    "the resource types' CloudFormation handler permissions"
                ),
                PolicyDocument=iamdoc.document(*part),
                Roles=[Ref(role)],
            )
        )
    return role, policies


def teardown_role(
    logical_id: str,
    names: ProjectNames,
    stack_arns: list[Any],
    deploy_role_arn: Any,
    log_group_arn: Any,
    key_arn: Any,
    function_arn: Any,
    tags: Tags,
) -> iam.Role:
    """The teardown function's role: delete the per-run stacks with the deploy role."""
    statements = [
        iamdoc.allow(
            [cfn.DeleteStack, cfn.DescribeStacks, cfn.DescribeStackEvents],
            stack_arns,
            sid="DeleteRunStacks",
        ),
        iamdoc.pass_role(deploy_role_arn, "cloudformation.amazonaws.com", sid="DeleteWithDeployRole"),
        # A deletion that outlasts one invocation continues in the next.
        iamdoc.allow([awslambda.InvokeFunction], function_arn, sid="ContinueLater"),
        iamdoc.allow([logs.CreateLogStream, logs.PutLogEvents], log_group_arn, sid="WriteOwnLogs"),
        iamdoc.allow([kms.Decrypt], key_arn, sid="DecryptEnvironment"),
        # X-Ray has no resource-level permissions.
        iamdoc.allow([xray.PutTraceSegments, xray.PutTelemetryRecords], "*", sid="Tracing"),
    ]
    return _role(
        logical_id, names, "teardown", "lambda.amazonaws.com", statements, tags,
        "Deletes the project's per-run stacks when the project is deleted",
    )


def flow_logs_role(logical_id: str, names: ProjectNames, log_group_arn: Any, tags: Tags) -> iam.Role:
    """The role VPC Flow Logs assumes to write into the flow-log group."""
    statements = [
        iamdoc.allow(
            [logs.CreateLogStream, logs.PutLogEvents, logs.DescribeLogStreams],
            log_group_arn,
            sid="WriteFlowLogs",
        ),
        # DescribeLogGroups supports no resource-level permissions.
        iamdoc.allow([logs.DescribeLogGroups], "*", sid="FindLogGroup"),
    ]
    return _role(
        logical_id, names, "flow-logs", "vpc-flow-logs.amazonaws.com", statements, tags,
        "VPC Flow Logs delivery role",
    )


def role_arn(role: iam.Role) -> GetAtt:
    return GetAtt(role, "Arn")


__all__ = [
    "JUSTIFIED_WILDCARDS",
    "PipelineResources",
    "cloudformation_role",
    "codebuild_role",
    "codepipeline_role",
    "events_role",
    "flow_logs_role",
    "role_arn",
    "sagemaker_role",
    "states_role",
]
