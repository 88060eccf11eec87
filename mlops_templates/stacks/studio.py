"""Studio stack: the SageMaker Studio organization template.

With ``studio.publish_mode: service_catalog`` (the default) it creates a Service Catalog
portfolio and, in it, a CloudFormation product whose template is the packaged pipeline
stack (Parameter ``PipelineTemplateUrl``), tagged ``sagemaker:studio-visibility=true`` so
Studio lists it as a project template. It also creates the launch role Service Catalog
uses to create a project's resources (a ``LaunchRoleConstraint``), with exactly the
permissions the pipeline product's resource types need, and shares the portfolio with the
Studio execution roles in ``studio.principal_arns``.

With ``s3`` there is no Service Catalog resource: the template bucket Studio lists the
pipeline template from and the same launch role, which ``CreateProject`` names as the
``RoleARN`` of the project's CloudFormation stack (:mod:`.studio_s3`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from awacs import cloudformation as cfn
from awacs import s3
from awacs.aws import Allow, Condition, Principal, Statement, StringEquals
from awacs.sts import AssumeRole
from troposphere import (
    GetAtt,
    Output,
    Parameter,
    Ref,
    Tags,
    Template,
    iam,
    servicecatalog,
)

from mlops_templates import iam as iamdoc
from mlops_templates import naming
from mlops_templates.config import Config
from mlops_templates.permissions import grants, scopes
from mlops_templates.stacks import common, pipeline
from mlops_templates.stacks.stack import Stack

TEMPLATE_URL = "PipelineTemplateUrl"
PORTFOLIO = "Portfolio"
PRODUCT = "PipelineProduct"
PRODUCT_ASSOCIATION = "PortfolioProductAssociation"
LAUNCH_ROLE = "LaunchRole"
LAUNCH_CONSTRAINT = "LaunchRoleConstraint"
PRINCIPAL_PREFIX = "StudioPrincipal"
#: Logical-ID prefix of the launch role's managed policies (``LaunchPolicy1``, ...):
#: the statements are packed into as many as IAM's size limit needs.
LAUNCH_POLICY = "LaunchPolicy"
URL_PATTERN = r"^https://[a-z0-9.-]+\.amazonaws\.com(\.cn)?/\S+$"
STUDIO_VISIBILITY_TAG = "sagemaker:studio-visibility"

Statements = list[Statement]


@dataclass(frozen=True)
class Launcher:
    """What launches a project's pipeline stack in one ``studio.publish_mode``."""

    #: Service principal that assumes the launch role.
    service: str
    #: The provisioned stacks' names, under ``stack/`` in their ARN.
    stacks: str
    #: The object tag the launcher puts on its own copy of the template.
    copy_tag: str
    #: The launch role's description.
    description: str
    #: Who creates a project's resources with the launch role.
    who: str


LAUNCHERS: dict[str, Launcher] = {
    # Service Catalog names provisioned stacks SC-<account>-pp-<id>, and copies product
    # templates to its own bucket with the object tag servicecatalog:provisioning=true.
    "service_catalog": Launcher(
        "servicecatalog.amazonaws.com",
        "SC-${AWS::AccountId}-pp-*/*",
        "servicecatalog:provisioning",
        "Service Catalog launch role of the SageMaker project product",
        "Service Catalog",
    ),
    # CfnTemplateProvider.RoleARN is "the IAM role that CloudFormation assumes when creating
    # the stack" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/
    # API_CfnCreateTemplateProvider.html). The stack names (SP-*) and the tag of SageMaker's
    # template copy (Projects:provisioning) are those of AWS's launch role for S3 templates
    # (aws-samples/sagemaker-custom-project-templates, s3_templates/.../iam/
    # sagemaker-projects-roles-and-policies.yaml, AmazonSageMakerAdmin-ProjectsServiceRolePolicy).
    "s3": Launcher(
        "cloudformation.amazonaws.com",
        "SP-*/*",
        "Projects:provisioning",
        "Launch role of SageMaker projects created from the S3 project template",
        "CloudFormation",
    ),
}


def _stack_statements(launcher: Launcher) -> Statements:
    """What the launcher needs the launch role for beyond the resources: the stack."""
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
            common.arn("cloudformation", f"stack/{launcher.stacks}"),
            sid="ProvisionedStacks",
        ),
        # Template inspection supports no resource-level permissions.
        iamdoc.allow([cfn.GetTemplateSummary, cfn.ValidateTemplate], "*", sid="InspectTemplates"),
        # The launcher copies the template to its own bucket and tags the objects.
        iamdoc.allow(
            [s3.GetObject],
            "*",
            conditions=Condition(StringEquals(f"s3:ExistingObjectTag/{launcher.copy_tag}", "true")),
            sid="ReadProductTemplate",
        ),
    ]


def pipeline_resource_types(config: Config) -> set[str]:
    """Resource types the pipeline product creates for ``config``."""
    return {r.resource_type for r in pipeline.build(config).resources.values()}


def launch_statements(config: Config) -> Statements:
    """The launch role's statements: the provisioned stack, then, for every resource type
    the pipeline product creates, what CloudFormation's handler of that type calls
    (``permissions.grants``), scoped to names under the organisation prefix."""
    source = config.pipeline.source
    uses_connection = source.provider == "codeconnections"
    connection = source.connection_arn if uses_connection else None
    scope = scopes.launch_scope(config.project.prefix, connection, uses_connection)
    launcher = LAUNCHERS[config.studio.publish_mode]
    return [*_stack_statements(launcher), *grants.statements(pipeline_resource_types(config), scope)]


def launch_policies(config: Config) -> list[Statements]:
    """``launch_statements`` packed into managed policies under IAM's size limit."""
    return iamdoc.pack(launch_statements(config))


def _principal_id(arn: str) -> str:
    return PRINCIPAL_PREFIX + hashlib.sha256(arn.encode()).hexdigest()[:10]


def _template_url(stack: Stack) -> Parameter:
    return stack.template.add_parameter(
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


@dataclass(frozen=True, eq=False)
class Catalog:
    """The portfolio and the pipeline product in it."""

    portfolio: servicecatalog.Portfolio
    product: servicecatalog.CloudFormationProduct


def catalog(stack: Stack, template_url: Parameter) -> Catalog:
    """The portfolio, and the pipeline product in it, tagged for Studio to list."""
    studio, tags = stack.config.studio, stack.tags()
    portfolio = stack.add(
        servicecatalog.Portfolio(
            PORTFOLIO,
            DisplayName=studio.portfolio_name,
            ProviderName=studio.provider_name,
            Description=f"SageMaker project templates of {naming.base(stack.config)}",
            Tags=tags,
        ),
        "Groups the organization's SageMaker project templates for Studio users",
    )
    product = stack.add(
        servicecatalog.CloudFormationProduct(
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
                    Info=servicecatalog.Info(LoadTemplateFromURL=Ref(template_url)),
                    Type="CLOUD_FORMATION_TEMPLATE",
                    DisableTemplateValidation=False,
                )
            ],
            Tags=tags + Tags(**{STUDIO_VISIBILITY_TAG: "true"}),
        ),
        "The pipeline stack as a SageMaker project template visible in Studio",
    )
    stack.add(
        servicecatalog.PortfolioProductAssociation(
            PRODUCT_ASSOCIATION, PortfolioId=Ref(portfolio), ProductId=Ref(product)
        ),
        "Puts the pipeline product in the portfolio",
    )
    return Catalog(portfolio, product)


@dataclass(frozen=True, eq=False)
class Launch:
    """The launch role and its managed policies."""

    role: iam.Role
    policies: list[iam.ManagedPolicy]


def _trust(config: Config) -> Any:
    launcher = LAUNCHERS[config.studio.publish_mode]
    document = iamdoc.trust(launcher.service)
    if config.studio.publish_mode == "s3":
        # AWS's launch role for S3 templates also trusts the Studio execution roles
        # (sagemaker-projects-roles-and-policies.yaml, see LAUNCHERS).
        document.Statement.append(
            Statement(
                Sid="StudioExecutionRoles",
                Effect=Allow,
                Action=[AssumeRole],
                Principal=Principal("AWS", list(config.studio.principal_arns)),
            )
        )
    return document


def launch_role(stack: Stack) -> Launch:
    """The role a project's resources are created with, and its managed policies."""
    config = stack.config
    launcher = LAUNCHERS[config.studio.publish_mode]
    role = stack.add(
        iam.Role(
            LAUNCH_ROLE,
            RoleName=naming.physical_name(config, "launch"),
            Description=launcher.description,
            AssumeRolePolicyDocument=_trust(config),
            Tags=stack.tags(),
        ),
        f"{launcher.who} creates each project's resources with this role, not with the "
        "Studio user's permissions",
    )
    policies = [
        stack.add(
            iam.ManagedPolicy(
                f"{LAUNCH_POLICY}{index}",
                ManagedPolicyName=naming.physical_name(config, f"launch-{index}"),
                Description=f"{launcher.who} launch permissions of the project product ({index})",
                PolicyDocument=iamdoc.document(*statements),
                Roles=[Ref(role)],
            ),
            "Lets the launch role create, update and delete a project's pipeline stack",
        )
        for index, statements in enumerate(launch_policies(config), start=1)
    ]
    return Launch(role, policies)


def constrain(stack: Stack, products: Catalog, launch: Launch) -> None:
    """The constraint that makes Service Catalog launch the product with the launch role."""
    stack.add(
        servicecatalog.LaunchRoleConstraint(
            LAUNCH_CONSTRAINT,
            Description="Projects are created with the launch role",
            PortfolioId=Ref(products.portfolio),
            ProductId=Ref(products.product),
            RoleArn=GetAtt(launch.role, "Arn"),
            DependsOn=[PRODUCT_ASSOCIATION, *(p.title for p in launch.policies)],
        ),
        "Makes Service Catalog launch the product with the launch role",
    )


def share(stack: Stack, portfolio: servicecatalog.Portfolio) -> None:
    """The portfolio, shared with the Studio execution roles of ``studio.principal_arns``."""
    for arn in stack.config.studio.principal_arns:
        stack.add(
            servicecatalog.PortfolioPrincipalAssociation(
                _principal_id(arn), PortfolioId=Ref(portfolio), PrincipalARN=arn,
                PrincipalType="IAM",
            ),
            "Lets this Studio execution role create projects from the portfolio",
        )


def build(config: Config) -> Template:
    """The studio stack for ``config`` (see the module docstring for its resources)."""
    if config.studio.publish_mode == "s3":
        from mlops_templates.stacks import studio_s3

        stack = Stack.new(config, "studio", "SageMaker Studio organization template (S3)")
        return studio_s3.build(stack, launch_role(stack))
    stack = Stack.new(config, "studio", "SageMaker Studio organization template")
    products = catalog(stack, _template_url(stack))
    launch = launch_role(stack)
    constrain(stack, products, launch)
    share(stack, products.portfolio)
    product = products.product
    for name, description, value in (
        ("PortfolioId", "ID of the Service Catalog portfolio", Ref(products.portfolio)),
        ("ProductId", "ID of the pipeline product", Ref(product)),
        (
            "ProvisioningArtifactId",
            "ID of the product's provisioning artifact (version)",
            GetAtt(product, "ProvisioningArtifactIds"),
        ),
        ("ProductName", "Name of the pipeline product", GetAtt(product, "ProductName")),
        ("LaunchRoleArn", "ARN of the Service Catalog launch role", GetAtt(launch.role, "Arn")),
    ):
        stack.template.add_output(Output(name, Description=description, Value=value))
    return stack.describe(
        "Service Catalog portfolio with the pipeline product (visible in SageMaker Studio), "
        "shared with Studio execution roles and launched with a dedicated role",
    )
