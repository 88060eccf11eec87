"""Studio stack: the SageMaker Studio organization template.

Creates a Service Catalog portfolio and, in it, a CloudFormation product whose
template is the packaged pipeline stack (Parameter ``PipelineTemplateUrl``), tagged
``sagemaker:studio-visibility=true`` so Studio lists it as a project template. It
also creates the launch role Service Catalog uses to create a project's resources
(a ``LaunchRoleConstraint``), with exactly the permissions the pipeline product's
resource types need, and shares the portfolio with the Studio execution roles in
``studio.principal_arns``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

from awacs import cloudformation as cfn
from awacs import codebuild as cb
from awacs import codeconnections as ccn
from awacs import codepipeline as cp
from awacs import codestar_connections as csc
from awacs import ec2, ecr, kms, logs, route53, s3, sns
from awacs import events as ev
from awacs import iam as iam_actions
from awacs.aws import Condition, Statement, StringEquals
from troposphere import (
    GetAtt,
    Output,
    Parameter,
    Ref,
    Sub,
    Tags,
    Template,
    apigateway,
    iam,
    servicecatalog,
)

from mlops_templates import iam as iamdoc
from mlops_templates import naming
from mlops_templates.config import Config
from mlops_templates.stacks import common, pipeline
from mlops_templates.stacks.context import describe, describe_template

TEMPLATE_URL = "PipelineTemplateUrl"
PORTFOLIO = "Portfolio"
PRODUCT = "PipelineProduct"
PRODUCT_ASSOCIATION = "PortfolioProductAssociation"
LAUNCH_ROLE = "LaunchRole"
LAUNCH_CONSTRAINT = "LaunchRoleConstraint"
PRINCIPAL_PREFIX = "StudioPrincipal"
API_LOGS_ROLE = "ApiGatewayLogsRole"
API_ACCOUNT = "ApiGatewayAccount"
#: Managed policies of the launch role (one per group, each under the IAM size limit).
POLICY_IDS = {
    "stack": "LaunchStackPolicy",
    "storage": "LaunchStoragePolicy",
    "delivery": "LaunchDeliveryPolicy",
    "network": "LaunchNetworkPolicy",
}
URL_PATTERN = r"^https://[a-z0-9.-]+\.amazonaws\.com(\.cn)?/\S+$"
STUDIO_VISIBILITY_TAG = "sagemaker:studio-visibility"

#: Role-name suffixes of the pipeline stack (``<prefix>-<project>-<suffix>``).
PIPELINE_ROLE_SUFFIXES = (
    "codepipeline", "codebuild", "cloudformation", "sagemaker", "states", "events", "flow-logs",
)
#: Services the pipeline stack passes its roles to while creating resources.
PASSED_TO = (
    "codebuild.amazonaws.com",
    "codepipeline.amazonaws.com",
    "events.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
)


class _Arns:
    """ARN patterns of every resource any project's pipeline stack creates."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def named(self, service: str, resource_prefix: str) -> Sub:
        return common.arn(service, f"{resource_prefix}{self.prefix}-*")


Statements = list[Statement]


def _stack(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [
                cfn.CreateStack,
                cfn.UpdateStack,
                cfn.DeleteStack,
                cfn.DescribeStacks,
                cfn.DescribeStackEvents,
                cfn.SetStackPolicy,
                cfn.ContinueUpdateRollback,
            ],
            # Service Catalog names provisioned stacks SC-<account>-pp-<id>.
            common.arn("cloudformation", "stack/SC-${AWS::AccountId}-pp-*/*"),
            sid="ProvisionedStacks",
        ),
        # Template inspection supports no resource-level permissions.
        iamdoc.allow([cfn.GetTemplateSummary, cfn.ValidateTemplate], "*", sid="InspectTemplates"),
        # Service Catalog copies product templates to its own bucket and tags the objects.
        iamdoc.allow(
            [s3.GetObject],
            "*",
            conditions=Condition(StringEquals("s3:ExistingObjectTag/servicecatalog:provisioning", "true")),
            sid="ReadProductTemplate",
        ),
    ]


def _kms(arns: _Arns) -> Statements:
    return [
        # CreateKey names no key (it does not exist yet).
        iamdoc.allow([kms.CreateKey], "*", sid="CreateProjectKey"),
        iamdoc.allow(
            [
                kms.PutKeyPolicy,
                kms.GetKeyPolicy,
                kms.EnableKeyRotation,
                kms.GetKeyRotationStatus,
                kms.DescribeKey,
                kms.UpdateKeyDescription,
                kms.TagResource,
                kms.UntagResource,
                kms.ListResourceTags,
                kms.CreateGrant,
                kms.RetireGrant,
                kms.CreateAlias,
                kms.DeleteAlias,
                kms.UpdateAlias,
            ],
            # Key IDs are generated; keys are reachable here only through the project's
            # own resources, and aliases are limited to the prefix.
            [common.arn("kms", "key/*"), arns.named("kms", "alias/")],
            sid="ConfigureProjectKey",
        ),
    ]


def _buckets(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [
                s3.CreateBucket,
                s3.DeleteBucket,
                s3.ListBucket,
                s3.GetBucketLocation,
                s3.PutEncryptionConfiguration,
                s3.GetEncryptionConfiguration,
                s3.PutBucketVersioning,
                s3.GetBucketVersioning,
                s3.PutBucketPublicAccessBlock,
                s3.GetBucketPublicAccessBlock,
                s3.PutBucketOwnershipControls,
                s3.GetBucketOwnershipControls,
                s3.PutBucketLogging,
                s3.GetBucketLogging,
                s3.PutBucketNotification,
                s3.GetBucketNotification,
                s3.PutLifecycleConfiguration,
                s3.GetLifecycleConfiguration,
                s3.PutBucketTagging,
                s3.GetBucketTagging,
            ],
            common.arn("s3", f"{arns.prefix}-*", region=False, account=False),
            sid="ProjectBuckets",
        )
    ]


def _bucket_policies(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [s3.PutBucketPolicy, s3.GetBucketPolicy, s3.DeleteBucketPolicy],
            common.arn("s3", f"{arns.prefix}-*", region=False, account=False),
            sid="ProjectBucketPolicies",
        )
    ]


def _topics(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [
                sns.CreateTopic,
                sns.DeleteTopic,
                sns.GetTopicAttributes,
                sns.SetTopicAttributes,
                sns.TagResource,
                sns.UntagResource,
                sns.ListTagsForResource,
                sns.Subscribe,
                sns.Unsubscribe,
                sns.GetSubscriptionAttributes,
            ],
            [arns.named("sns", ""), common.arn("sns", f"{arns.prefix}-*:*")],
            sid="ProjectTopics",
        )
    ]


def _repositories(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [
                ecr.CreateRepository,
                ecr.DeleteRepository,
                ecr.DescribeRepositories,
                ecr.PutLifecyclePolicy,
                ecr.GetLifecyclePolicy,
                ecr.DeleteLifecyclePolicy,
                ecr.PutImageScanningConfiguration,
                ecr.PutImageTagMutability,
                ecr.TagResource,
                ecr.UntagResource,
                ecr.ListTagsForResource,
            ],
            arns.named("ecr", "repository/"),
            sid="ProjectRepositories",
        )
    ]


def _log_groups(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            common.LOG_GROUP_MANAGEMENT,
            common.arn("logs", f"log-group:/{arns.prefix}/*"),
            sid="ProjectLogGroups",
        ),
        # DescribeLogGroups supports no resource-level permissions.
        iamdoc.allow([logs.DescribeLogGroups], "*", sid="FindLogGroups"),
    ]


def _roles(arns: _Arns) -> Statements:
    role_arns = [
        common.arn("iam", f"role/{arns.prefix}-*-{suffix}", region=False)
        for suffix in PIPELINE_ROLE_SUFFIXES
    ]
    return [
        iamdoc.allow(
            [
                iam_actions.CreateRole,
                iam_actions.DeleteRole,
                iam_actions.GetRole,
                iam_actions.UpdateRoleDescription,
                iam_actions.UpdateAssumeRolePolicy,
                iam_actions.TagRole,
                iam_actions.UntagRole,
                iam_actions.PutRolePolicy,
                iam_actions.DeleteRolePolicy,
                iam_actions.GetRolePolicy,
                iam_actions.ListRolePolicies,
                iam_actions.ListAttachedRolePolicies,
            ],
            role_arns,
            sid="ProjectRoles",
        ),
        iamdoc.pass_role(role_arns, list(PASSED_TO), sid="PassProjectRoles"),
    ]


def _builds(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [cb.CreateProject, cb.UpdateProject, cb.DeleteProject, cb.BatchGetProjects],
            arns.named("codebuild", "project/"),
            sid="ProjectBuilds",
        )
    ]


def _pipelines(arns: _Arns, config: Config) -> Statements:
    statements = [
        iamdoc.allow(
            [
                cp.CreatePipeline,
                cp.UpdatePipeline,
                cp.DeletePipeline,
                cp.GetPipeline,
                cp.GetPipelineState,
                cp.TagResource,
                cp.UntagResource,
                cp.ListTagsForResource,
            ],
            arns.named("codepipeline", ""),
            sid="ProjectPipelines",
        )
    ]
    source = config.pipeline.source
    if source.provider == "codeconnections":
        # Connections created before the CodeConnections rename keep codestar-connections
        # ARNs; each service checks its own action and condition key.
        for service, action, sid in (
            ("codeconnections", ccn.PassConnection, "PassSourceConnection"),
            ("codestar-connections", csc.PassConnection, "PassLegacySourceConnection"),
        ):
            arn = source.connection_arn
            if arn is not None and f":{service}:" not in arn:
                continue
            statements.append(
                iamdoc.allow(
                    [action],
                    # Without a configured connection, the product asks for one at launch.
                    arn or common.arn(service, "connection/*"),
                    conditions=Condition(
                        StringEquals(f"{service}:PassedToService", "codepipeline.amazonaws.com")
                    ),
                    sid=sid,
                )
            )
    return statements


def _rules(arns: _Arns) -> Statements:
    return [
        iamdoc.allow(
            [
                ev.PutRule,
                ev.DeleteRule,
                ev.DescribeRule,
                ev.EnableRule,
                ev.DisableRule,
                ev.PutTargets,
                ev.RemoveTargets,
                ev.ListTargetsByRule,
                ev.TagResource,
                ev.UntagResource,
                ev.ListTagsForResource,
            ],
            arns.named("events", "rule/"),
            sid="ProjectRules",
        )
    ]


def _network(arns: _Arns) -> Statements:
    return [
        # EC2 creation APIs act on IDs that exist only after the call (VPC, subnets,
        # route tables, security groups, endpoints, flow logs); describe calls and the
        # private-DNS association of interface endpoints support no resource scoping.
        iamdoc.allow(
            [
                ec2.CreateVpc,
                ec2.DeleteVpc,
                ec2.ModifyVpcAttribute,
                ec2.DescribeVpcAttribute,
                ec2.DescribeVpcs,
                ec2.CreateSubnet,
                ec2.DeleteSubnet,
                ec2.DescribeSubnets,
                ec2.DescribeAvailabilityZones,
                ec2.CreateRouteTable,
                ec2.DeleteRouteTable,
                ec2.AssociateRouteTable,
                ec2.DisassociateRouteTable,
                ec2.DescribeRouteTables,
                ec2.CreateSecurityGroup,
                ec2.DeleteSecurityGroup,
                ec2.DescribeSecurityGroups,
                ec2.AuthorizeSecurityGroupIngress,
                ec2.AuthorizeSecurityGroupEgress,
                ec2.RevokeSecurityGroupIngress,
                ec2.RevokeSecurityGroupEgress,
                ec2.CreateVpcEndpoint,
                ec2.DeleteVpcEndpoints,
                ec2.ModifyVpcEndpoint,
                ec2.DescribeVpcEndpoints,
                ec2.DescribePrefixLists,
                ec2.CreateFlowLogs,
                ec2.DeleteFlowLogs,
                ec2.DescribeFlowLogs,
                ec2.CreateTags,
                ec2.DeleteTags,
                logs.CreateLogDelivery,
                logs.DeleteLogDelivery,
                route53.AssociateVPCWithHostedZone,
            ],
            "*",
            sid="ProjectNetwork",
        )
    ]


#: Resource type of the pipeline stack -> (policy group, statement factory).
PERMISSIONS: dict[str, tuple[str, Callable[..., Statements]]] = {
    "AWS::KMS::Key": ("storage", _kms),
    "AWS::KMS::Alias": ("storage", _kms),
    "AWS::S3::Bucket": ("storage", _buckets),
    "AWS::S3::BucketPolicy": ("storage", _bucket_policies),
    "AWS::SNS::Topic": ("storage", _topics),
    "AWS::SNS::TopicPolicy": ("storage", _topics),
    "AWS::SNS::Subscription": ("storage", _topics),
    "AWS::ECR::Repository": ("storage", _repositories),
    "AWS::Logs::LogGroup": ("storage", _log_groups),
    "AWS::IAM::Role": ("delivery", _roles),
    "AWS::CodeBuild::Project": ("delivery", _builds),
    "AWS::CodePipeline::Pipeline": ("delivery", _pipelines),
    "AWS::Events::Rule": ("delivery", _rules),
    **{
        f"AWS::EC2::{kind}": ("network", _network)
        for kind in (
            "VPC", "Subnet", "RouteTable", "SubnetRouteTableAssociation", "SecurityGroup",
            "SecurityGroupIngress", "SecurityGroupEgress", "VPCEndpoint", "FlowLog",
        )
    },
}


def pipeline_resource_types(config: Config) -> set[str]:
    """Resource types the pipeline product creates for ``config``."""
    return {r.resource_type for r in pipeline.build(config).resources.values()}


def launch_statements(config: Config) -> dict[str, Statements]:
    """Launch-role statements per policy group, for the pipeline product's resource types.

    Raises ``KeyError`` naming a resource type the launch role has no permissions for,
    so a new resource in the pipeline stack cannot ship without them.
    """
    arns = _Arns(config.project.prefix)
    groups: dict[str, Statements] = {"stack": _stack(arns)}
    seen: set[Callable[..., Statements]] = set()
    for resource_type in sorted(pipeline_resource_types(config)):
        if resource_type not in PERMISSIONS:
            raise KeyError(
                f"the launch role has no permissions for {resource_type}: add it to "
                "mlops_templates.stacks.studio.PERMISSIONS"
            )
        group, factory = PERMISSIONS[resource_type]
        if factory in seen:
            continue
        seen.add(factory)
        args = (arns, config) if factory is _pipelines else (arns,)
        groups.setdefault(group, []).extend(factory(*args))
    return groups


def _principal_id(arn: str) -> str:
    return PRINCIPAL_PREFIX + hashlib.sha256(arn.encode()).hexdigest()[:10]


def _add_all(template: Template, resources: Iterable[Any]) -> None:
    for resource in resources:
        template.add_resource(resource)


#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    PORTFOLIO: "Groups the organization's SageMaker project templates for Studio users",
    PRODUCT: "The pipeline stack as a SageMaker project template visible in Studio",
    PRODUCT_ASSOCIATION: "Puts the pipeline product in the portfolio",
    LAUNCH_ROLE: "Service Catalog creates each project's resources with this role, not "
    "with the Studio user's permissions",
    LAUNCH_CONSTRAINT: "Makes Service Catalog launch the product with the launch role",
    POLICY_IDS["stack"]: "Lets the launch role run the provisioned stack",
    POLICY_IDS["storage"]: "Key, buckets, topic, repository and log groups of a project",
    POLICY_IDS["delivery"]: "Roles, builds, pipeline and rules of a project",
    POLICY_IDS["network"]: "The private VPC of a project",
    API_LOGS_ROLE: "API Gateway writes the projects' API access logs with this role",
    API_ACCOUNT: "Account-wide API Gateway setting that access logging requires",
}


def _api_gateway_account(config: Config) -> list[Any]:
    """The account's API Gateway CloudWatch Logs role.

    Access logging of every project's API needs it once per account and region; it lives
    here, in the organization stack, because a project's stack must not overwrite or
    delete an account-wide setting that other projects rely on.
    """
    role = iam.Role(
        API_LOGS_ROLE,
        Description="API Gateway pushes access and execution logs to CloudWatch Logs",
        AssumeRolePolicyDocument=iamdoc.trust("apigateway.amazonaws.com"),
        ManagedPolicyArns=[
            common.arn(
                "iam", "policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
                region=False, account="aws",
            )
        ],
        Tags=common.tags(config, "studio"),
    )
    account = apigateway.Account(API_ACCOUNT, CloudWatchRoleArn=GetAtt(role, "Arn"))
    return [role, account]


def build(config: Config) -> Template:
    """The studio stack for ``config`` (see the module docstring for its resources)."""
    studio = config.studio
    template = common.new_template(config, "SageMaker Studio organization template")
    template.add_parameter(
        Parameter(
            TEMPLATE_URL,
            Type="String",
            Description="HTTPS URL of the packaged pipeline template in S3",
            MaxLength=2048,
            AllowedPattern=URL_PATTERN,
            ConstraintDescription="an https:// URL of an S3 object, e.g. "
            "https://<bucket>.s3.<region>.amazonaws.com/<key>",
        )
    )
    tags = common.tags(config, "studio")

    portfolio = servicecatalog.Portfolio(
        PORTFOLIO,
        DisplayName=studio.portfolio_name,
        ProviderName=studio.provider_name,
        Description=f"SageMaker project templates of {naming.base(config)}",
        Tags=tags,
    )
    product = servicecatalog.CloudFormationProduct(
        PRODUCT,
        Name=studio.product_name,
        Owner=studio.provider_name,
        Description=(
            "Trains, registers, canary-deploys and monitors a model: CodePipeline, Step "
            "Functions, SageMaker endpoints and an authenticated API"
        ),
        ProvisioningArtifactParameters=[
            servicecatalog.ProvisioningArtifactProperties(
                Name=studio.product_version,
                Description="Packaged pipeline stack",
                Info=servicecatalog.Info(LoadTemplateFromURL=Ref(TEMPLATE_URL)),
                Type="CLOUD_FORMATION_TEMPLATE",
                DisableTemplateValidation=False,
            )
        ],
        Tags=tags + Tags(**{STUDIO_VISIBILITY_TAG: "true"}),
    )
    association = servicecatalog.PortfolioProductAssociation(
        PRODUCT_ASSOCIATION, PortfolioId=Ref(portfolio), ProductId=Ref(product)
    )

    role = iam.Role(
        LAUNCH_ROLE,
        RoleName=naming.physical_name(config, "launch", "iam-role"),
        Description="Service Catalog launch role of the SageMaker project product",
        AssumeRolePolicyDocument=iamdoc.trust("servicecatalog.amazonaws.com"),
        Tags=tags,
    )
    policies = []
    for group, statements in launch_statements(config).items():
        policy = iam.ManagedPolicy(
            POLICY_IDS[group],
            ManagedPolicyName=naming.physical_name(config, f"launch-{group}", "iam-role"),
            Description=f"Service Catalog launch permissions: {group}",
            PolicyDocument=iamdoc.document(*statements),
            Roles=[Ref(role)],
        )
        if group == "network":
            common.skip_checkov(
                policy,
                {
                    "CKV_AWS_111": "EC2 creates the VPC, subnets, route table, security groups, "
                    "endpoints and flow log under IDs that exist only after the call; describe "
                    "calls and Route 53's private-DNS association support no resource scoping",
                },
            )
        policies.append(policy)
    constraint = servicecatalog.LaunchRoleConstraint(
        LAUNCH_CONSTRAINT,
        Description="Projects are created with the launch role",
        PortfolioId=Ref(portfolio),
        ProductId=Ref(product),
        RoleArn=GetAtt(role, "Arn"),
        DependsOn=[PRODUCT_ASSOCIATION, *(p.title for p in policies)],
    )
    principals = [
        servicecatalog.PortfolioPrincipalAssociation(
            _principal_id(arn), PortfolioId=Ref(portfolio), PrincipalARN=arn, PrincipalType="IAM"
        )
        for arn in studio.principal_arns
    ]
    _add_all(template, [portfolio, product, association, role, *policies, constraint, *principals])
    if studio.api_gateway_logging_role:
        _add_all(template, _api_gateway_account(config))
    for logical_id, resource in template.resources.items():
        why = WHY.get(logical_id) or "Lets this Studio execution role create projects from the portfolio"
        describe(resource, why)
    describe_template(
        template,
        "Service Catalog portfolio with the pipeline product (visible in SageMaker Studio), "
        "shared with Studio execution roles and launched with a dedicated role",
    )
    for name, description, value in (
        ("PortfolioId", "ID of the Service Catalog portfolio", Ref(portfolio)),
        ("ProductId", "ID of the pipeline product", Ref(product)),
        (
            "ProvisioningArtifactId",
            "ID of the product's provisioning artifact (version)",
            GetAtt(product, "ProvisioningArtifactIds"),
        ),
        ("ProductName", "Name of the pipeline product", GetAtt(product, "ProductName")),
        ("LaunchRoleArn", "ARN of the Service Catalog launch role", GetAtt(role, "Arn")),
    ):
        template.add_output(Output(name, Description=description, Value=value))
    return template
