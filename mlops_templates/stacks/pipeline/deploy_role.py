"""The CloudFormation role that deploys the per-run stacks, and its managed policies.

Its statements are generated from the handler permissions of the resource types the
per-run stacks (workflow, deploy-dev, deploy-prd) create; the teardown custom resource
deletes those stacks with this role. The roles those stacks create carry the permissions
boundary made here (:mod:`mlops_templates.permissions.boundary`), and the role creates or
widens a role only with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from awacs import ec2
from troposphere import Ref, Sub, Tags, Template, iam

from mlops_templates import iam as iamdoc
from mlops_templates.config import Config
from mlops_templates.permissions import boundary, grants, scopes
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline.names import max_project_name_length
from mlops_templates.stacks.pipeline.policies import PipelineResources
from mlops_templates.stacks.pipeline.stack import Stack

CLOUDFORMATION_ROLE = "CloudFormationRole"
#: Logical-ID prefix of the CloudFormation role's managed policies: its generated
#: statements outgrow IAM's 10,240-character limit on a role's inline policies.
CLOUDFORMATION_POLICY = "CloudFormationPolicy"
#: The permissions boundary of the per-run stacks' roles (``<base>-boundary``).
BOUNDARY = "PermissionsBoundary"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    CLOUDFORMATION_ROLE: "Deploys the workflow, deploy-dev and deploy-prd stacks of each run",
    BOUNDARY: "The most the roles of the per-run stacks may do: the CloudFormation role creates "
    "roles only with it",
}
#: Why each of the role's managed policies exists (they are numbered from 1).
POLICY_WHY = "Permissions of the CloudFormation role, generated from the handler permissions"

#: What the SAM transform turns each serverless type of deploy-prd into (checked against
#: the real transform by the tests).
SAM_EXPANSION: dict[str, tuple[str, ...]] = {
    "AWS::Serverless::Function": (
        "AWS::Lambda::Function",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::Lambda::Permission",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
    ),
    "AWS::Serverless::Api": ("AWS::ApiGateway::RestApi", "AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage"),
}


@dataclass(frozen=True)
class DeployRole:
    """The deploy role, the managed policies that hold its permissions, and the boundary of
    the roles it creates."""

    role: iam.Role
    policies: list[iam.ManagedPolicy]
    boundary: iam.ManagedPolicy

    @property
    def titles(self) -> list[str]:
        """Logical IDs of the role, its policies and the boundary (what must outlive a
        dependant: a boundary in use by a role cannot be deleted)."""
        return [self.role.title, *(p.title for p in self.policies), self.boundary.title]


def create(stack: Stack, res: PipelineResources, tags: Tags) -> DeployRole:
    """Add the deploy role, with permissions for the per-run stacks' resource types, and the
    boundary of the roles they create."""
    templates = run_templates(stack.config, in_vpc=res.in_vpc)
    role, policies = cloudformation_role(CLOUDFORMATION_ROLE, res, resource_types(templates), tags,
                                         batch=stack.config.deployment.batch)
    limit = boundary_policy(res, boundary.role_actions(templates))
    for resource in (role, *policies, limit):
        stack.add(resource)
    return DeployRole(role, policies, limit)


#: Stand-ins for the subnets and security groups a project in a VPC runs in: the build
#: renders the per-run stacks with the real ones (``pipeline_build.derived_config``), which
#: give their functions' roles the network-interface actions.
STAND_IN_NETWORK = ("subnet-00000000000000000", "sg-00000000000000000")


def run_templates(config: Config, in_vpc: bool = False) -> list[Template]:
    """The per-run stacks ``config`` deploys, as rendered (``in_vpc``: as the build renders
    them in the project's network)."""
    from mlops_templates import stacks
    from mlops_templates.config import parse
    from mlops_templates.stacks.pipeline_build import derived_config

    if in_vpc:
        data = derived_config(config.model_dump(mode="json", exclude_defaults=True), *STAND_IN_NETWORK)
        config = parse(data, "run config")
    return [stacks.module(name).build(config) for name in stacks.run_stacks(config)]


def resource_types(templates: list[Template]) -> set[str]:
    """Resource types of ``templates`` as CloudFormation creates them."""
    found: set[str] = set()
    for template in templates:
        for resource in template.resources.values():
            found.update(SAM_EXPANSION.get(resource.resource_type, (resource.resource_type,)))
    return found


def boundary_arn(res: PipelineResources) -> Sub:
    """The ARN of the per-run roles' permissions boundary (``<base>-boundary``)."""
    return common.arn("iam", f"policy/{res.names.text('boundary')}", region=False)


def boundary_policy(res: PipelineResources, actions: set[str]) -> iam.ManagedPolicy:
    """The permissions boundary: ``actions`` (those of the per-run roles' policies) on the
    project's resources only."""
    scope = scopes.boundary_scope(res.names.base, res.key_arn, (res.artifact_bucket_arn, res.data_bucket_arn))
    return iam.ManagedPolicy(
        BOUNDARY,
        ManagedPolicyName=res.names.name("boundary"),
        Description=Sub(f"The most the roles of the per-run stacks of {res.names.base} may do"),
        PolicyDocument=iamdoc.document(*boundary.statements(actions, scope)),
    )


def cloudformation_role(
    logical_id: str,
    res: PipelineResources,
    run_types: set[str],
    tags: Tags,
    batch: bool = False,
) -> tuple[iam.Role, list[iam.ManagedPolicy]]:
    """The CloudFormation role that deploys the workflow, deploy-dev and deploy-prd
    stacks, and the managed policies that hold its permissions.

    Its statements are generated (``permissions.grants``): for every resource type of the
    per-run stacks (``run_types``, the SAM template's after its expansion), what
    CloudFormation's handler of that type calls, scoped to this project's names.
    """
    names = res.names
    scope = scopes.run_scope(names.base, res.key_arn, res.artifact_bucket_arn, batch, boundary_arn(res))
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
