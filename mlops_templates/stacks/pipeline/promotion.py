"""Promotion through the model registry (``pipeline.orchestrator: codepipeline``).

The registry drives production: the pipeline ends after DeployDev, and an EventBridge
rule on the project's model package group starts the ``promote`` CodeBuild project on
every state change of one of its versions. The project runs ``mlops-templates registry
promote`` (:mod:`mlops_templates.promotion`) from the source the newest build stored,
converging deploy-prd to the group's newest approved version through the stack's own
guardrails. A second rule tells the topic, in words, that a version was rejected.

The promote project has a role of its own: it reads the registry and the stored builds,
deploys only the deploy-prd stack (with the pipeline's CloudFormation role) and publishes
to the topic; the Build's role keeps none of that.
"""

from __future__ import annotations

from typing import Any

from awacs import cloudformation as cfn
from awacs import logs, s3, sns
from awacs import sagemaker as sm
from troposphere import GetAtt, Join, Ref, Sub, Tags, codebuild, events, iam

from mlops_templates import iam as iamdoc
from mlops_templates import notifications, promotion
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.builds import (
    BUILD_TIMEOUT_MINUTES,
    CONFIG_FILE,
    PYTHON_VERSION,
    SOURCE_KEY,
)
from mlops_templates.stacks.pipeline.names import PROJECT_NAME
from mlops_templates.stacks.pipeline.policies import (
    PipelineResources,
    key_use,
    objects,
    service_role,
)
from mlops_templates.stacks.pipeline.roles import Roles
from mlops_templates.stacks.pipeline.stack import Stack
from mlops_templates.stacks.pipeline.storage import REJECTED_NOTICE_COMPONENT, Storage

PROMOTE_PROJECT = "PromoteProject"
PROMOTE_ROLE = "PromoteRole"
REGISTRY_RULE = "RegistryChangedRule"
REJECTED_RULE = "VersionRejectedRule"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    PROMOTE_PROJECT: "Deploys production with the newest approved model version",
    PROMOTE_ROLE: "Lets the promotion read the registry and deploy the deploy-prd stack",
    REGISTRY_RULE: "Starts the promotion when a version of the model package group changes",
    REJECTED_RULE: "Notifies the topic when a model version is rejected",
}

#: "SageMaker Model Package State Change" events carry the model package's description
#: (ModelPackageGroupName, ModelPackageVersion, ModelApprovalStatus, ApprovalDescription):
#: https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
#: (model package state change).
DETAIL_TYPE = "SageMaker Model Package State Change"


def registry_pattern(group: Any, statuses: list[str] | None = None) -> dict[str, Any]:
    """The events of the versions of ``group`` (only those in ``statuses``, if given)."""
    detail: dict[str, Any] = {"ModelPackageGroupName": [group]}
    if statuses:
        detail["ModelApprovalStatus"] = statuses
    return {"source": ["aws.sagemaker"], "detail-type": [DETAIL_TYPE], "detail": detail}


def group_arns(res: PipelineResources) -> list[Any]:
    """The project's model package group and its versions."""
    group = res.names.text("models")
    return [common.arn("sagemaker", f"model-package-group/{group}"), common.arn("sagemaker", f"model-package/{group}/*")]


def read_registry(res: PipelineResources) -> list[Any]:
    """Find the newest approved version and read it."""
    return [
        # ListModelPackages supports no resource-level permissions (Service Authorization
        # Reference, Amazon SageMaker: its resource types column is empty).
        iamdoc.allow([sm.ListModelPackages], "*", sid="ListModelVersions"),
        iamdoc.allow([sm.DescribeModelPackage], group_arns(res), sid="ReadModelVersions"),
    ]


def promote_role(logical_id: str, res: PipelineResources, cloudformation_role_arn: Any, tags: Tags) -> iam.Role:
    """Read the registry and the stored builds, deploy deploy-prd, notify."""
    statements = [
        iamdoc.allow([logs.CreateLogStream, logs.PutLogEvents], res.log_group_arn, sid="BuildLogs"),
        iamdoc.allow(
            [s3.GetObject, s3.GetObjectVersion],
            [objects(res.artifact_bucket_arn, SOURCE_KEY.rsplit("/", 1)[0] + "/"),
             objects(res.artifact_bucket_arn, promotion.RUNS_PREFIX + "/")],
            sid="ReadStoredBuilds",
        ),
        # The deployer uploads the template it deploys beside the run's packages;
        # CloudFormation reads a template from S3 with the caller's permissions.
        iamdoc.allow([s3.PutObject, s3.GetObject], objects(res.artifact_bucket_arn, "packages/"), sid="UploadTemplate"),
        key_use(res),
        *read_registry(res),
        iamdoc.allow(
            [cfn.DescribeStacks, cfn.DescribeStackEvents, cfn.CreateChangeSet, cfn.DescribeChangeSet,
             cfn.ExecuteChangeSet, cfn.DeleteChangeSet],
            res.stack_arn("deploy-prd"),
            sid="DeployProduction",
        ),
        # deploy-prd uses the SAM transform: CloudFormation checks the caller may use it.
        iamdoc.allow(
            [cfn.CreateChangeSet],
            common.arn("cloudformation", "transform/Serverless-2016-10-31", account="aws"),
            sid="UseSamTransform",
        ),
        iamdoc.pass_role(cloudformation_role_arn, "cloudformation.amazonaws.com", sid="PassDeployRole"),
        iamdoc.allow([sns.Publish], res.topic_arn, sid="Notify"),
    ]
    return service_role(
        logical_id, res.names, "promote", "codebuild.amazonaws.com", statements, tags,
        "CodeBuild role of the promotion: deploys production from the model registry",
    )


def buildspec() -> str:
    """The promote project's buildspec: install the stored source, converge production."""
    return "\n".join(
        [
            "version: 0.2",
            "phases:",
            "  install:",
            "    runtime-versions:",
            f'      python: "{PYTHON_VERSION}"',
            "    commands:",
            "      - python -m pip install --quiet --upgrade pip",
            "      - python -m pip install --quiet .",
            "  build:",
            "    commands:",
            ('      - mlops-templates -c "${CONFIG_FILE}" --project-name "${SAGEMAKER_PROJECT_NAME}" '
            "registry promote --work build/promote"),
            "",
        ]
    )


def _project(stack: Stack, store: Storage, roles: Roles, role: iam.Role, log_group: Any) -> codebuild.Project:
    names = stack.names
    variables = {
        "CONFIG_FILE": CONFIG_FILE,
        "SAGEMAKER_PROJECT_NAME": Ref(PROJECT_NAME),
        "ARTIFACT_BUCKET": Ref(store.artifact),
        "CLOUDFORMATION_ROLE_ARN": GetAtt(roles.deploy.role, "Arn"),
        "NOTIFICATION_TOPIC_ARN": Ref(store.topic),
    }
    return codebuild.Project(
        PROMOTE_PROJECT,
        Name=names.name("promote"),
        Description=Sub(f"Deploys the newest approved model version of {names.base} to production"),
        ServiceRole=GetAtt(role, "Arn"),
        Artifacts=codebuild.Artifacts(Type="NO_ARTIFACTS"),
        # CodeBuild's S3 source is "bucket/key" of a zip file.
        Source=codebuild.Source(
            Type="S3", Location=Join("/", [Ref(store.artifact), SOURCE_KEY]), BuildSpec=buildspec()
        ),
        Environment=codebuild.Environment(
            Type="LINUX_CONTAINER",
            ComputeType="BUILD_GENERAL1_SMALL",
            Image=stack.config.pipeline.codebuild_image,
            ImagePullCredentialsType="CODEBUILD",
            PrivilegedMode=False,
            EnvironmentVariables=[
                codebuild.EnvironmentVariable(Name=name, Type="PLAINTEXT", Value=value)
                for name, value in variables.items()
            ],
        ),
        EncryptionKey=GetAtt(store.key, "Arn"),
        LogsConfig=codebuild.LogsConfig(
            CloudWatchLogs=codebuild.CloudWatchLogs(Status="ENABLED", GroupName=Ref(log_group), StreamName="promote")
        ),
        # No ConcurrentBuildLimit: with one, a build started at the limit fails and its
        # event is lost ("builds return an error", CodeBuild user guide, Builds in AWS
        # CodeBuild). Every build converges to the newest approved version, and the
        # deployer waits for a deploy-prd update in progress before its own change set.
        TimeoutInMinutes=BUILD_TIMEOUT_MINUTES * 2,
        QueuedTimeoutInMinutes=BUILD_TIMEOUT_MINUTES,
        Tags=stack.tags("pipeline"),
    )


def create(stack: Stack, store: Storage, roles: Roles, log_group: Any) -> codebuild.Project:
    """Add the promote role and project, the rule that starts it and the rejection notice."""
    res = roles.resources
    role = stack.add(promote_role(PROMOTE_ROLE, res, GetAtt(roles.deploy.role, "Arn"), stack.tags("pipeline")))
    project = stack.add(_project(stack, store, roles, role, log_group))
    group, names = stack.names.text("models"), stack.names
    stack.add(
        events.Rule(
            REGISTRY_RULE,
            Name=names.name("registry-changed"),
            Description=Sub(f"Converges production of {names.base} to the newest approved model version"),
            EventPattern=registry_pattern(Sub(group)),
            State="ENABLED",
            # The project's ARN by its name, as the pipeline's rules name the pipeline (the
            # EventBridge role is scoped to the same ARN).
            Targets=[
                events.Target(
                    Id="Promote",
                    Arn=common.arn("codebuild", f"project/{names.text('promote')}"),
                    RoleArn=GetAtt(roles.events, "Arn"),
                )
            ],
        )
    )
    text = stack.config.notifications.messages.get("rejected")
    paths = {"version": "$.detail.ModelPackageVersion", "group": "$.detail.ModelPackageGroupName",
             "time": "$.time", "reason": "$.detail.ApprovalDescription"}
    paths_map, template = notifications.render("rejected", text, {}).eventbridge(paths)
    stack.add(
        events.Rule(
            REJECTED_RULE,
            Name=names.name(REJECTED_NOTICE_COMPONENT),  # the topic's policy lets it publish
            Description=Sub(f"Sends the rejected notification of {names.base}"),
            EventPattern=registry_pattern(Sub(group), ["Rejected"]),
            State="ENABLED",
            Targets=[
                events.Target(
                    Id="Notify",
                    Arn=Ref(store.topic),
                    InputTransformer=events.InputTransformer(InputPathsMap=paths_map, InputTemplate=template),
                )
            ],
        )
    )
    return project
