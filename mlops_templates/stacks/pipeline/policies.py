"""IAM building blocks of the pipeline stack's roles.

Every statement names the project's own resources (ARNs built with ``Fn::Sub`` and
``SageMakerProjectName``). Where AWS requires a wildcard, the statement's comment
says why, and :data:`JUSTIFIED_WILDCARDS` lists the pattern with its reason, so a
test can reject any wildcard that is not on the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from awacs import ec2, kms
from awacs.aws import Condition, ForAnyValueStringLike, StringEquals
from troposphere import GetAtt, Join, Sub, Tags, iam

from mlops_templates import iam as iamdoc
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.names import ProjectNames

_BASE = r"[a-z][a-z0-9-]*-\$\{SageMakerProjectName\}"

#: Every wildcard resource the pipeline stack's roles grant, as a regular expression over the
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
    (rf"(training-job|hyper-parameter-tuning-job|processing-job|model|endpoint|model-package-group|monitoring-schedule)/{_BASE}-\*$",
     "job, model and endpoint names carry the project's name and a per-run or per-stage suffix"),
    (
        (
            rf":(stateMachine|function|application|deploymentgroup):{_BASE}-\*$"
            rf"|:alarm:(TargetTracking-endpoint/)?{_BASE}-\*$|:sns:.*:{_BASE}-\*$"
        ),
        "names the per-run stacks derive from the project's name",
    ),
)


@dataclass(frozen=True)
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


def objects(bucket_arn: Any, prefix: str = "") -> Join:
    """The objects of a bucket, or those under ``prefix``."""
    return Join("", [bucket_arn, f"/{prefix}*"])


def service_role(
    logical_id: str,
    names: ProjectNames,
    component: str,
    service: str,
    statements: Sequence[Any],
    tags: Tags,
    description: str,
) -> iam.Role:
    """A role named ``<prefix>-<project>-<component>`` that ``service`` assumes, with one
    inline policy."""
    return iam.Role(
        logical_id,
        RoleName=names.name(component),
        Description=description,
        AssumeRolePolicyDocument=iamdoc.trust(service),
        Policies=[iamdoc.inline_policy(component, *statements)],
        Tags=tags,
    )


def key_use(res: PipelineResources, *extra: Any) -> Any:
    """Encrypt and decrypt with the project's key (and the ``extra`` actions)."""
    return iamdoc.allow(
        [kms.Decrypt, kms.Encrypt, kms.GenerateDataKey, kms.DescribeKey, *extra],
        res.key_arn,
        sid="UseProjectKey",
    )


def vpc_network_interfaces(res: PipelineResources, service: str) -> list[Any]:
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


def role_arn(role: iam.Role) -> GetAtt:
    return GetAtt(role, "Arn")
