"""The CloudFormation role that deploys the per-run stacks, and its managed policies.

Its statements are generated from the handler permissions of the resource types the
per-run stacks (workflow, deploy-dev, deploy-prd) create; the teardown custom resource
deletes those stacks with this role.
"""

from __future__ import annotations

from dataclasses import dataclass

from awacs import ec2
from troposphere import Ref, Sub, Tags, iam

from mlops_templates import iam as iamdoc
from mlops_templates.config import Config
from mlops_templates.permissions import grants, scopes
from mlops_templates.stacks.pipeline.names import max_project_name_length
from mlops_templates.stacks.pipeline.policies import PipelineResources
from mlops_templates.stacks.pipeline.stack import Stack

CLOUDFORMATION_ROLE = "CloudFormationRole"
#: Logical-ID prefix of the CloudFormation role's managed policies: its generated
#: statements outgrow IAM's 10,240-character limit on a role's inline policies.
CLOUDFORMATION_POLICY = "CloudFormationPolicy"

#: Why each resource exists (Metadata Context).
WHY: dict[str, str] = {
    CLOUDFORMATION_ROLE: "Deploys the workflow, deploy-dev and deploy-prd stacks of each run",
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
    """The deploy role and the managed policies that hold its permissions."""

    role: iam.Role
    policies: list[iam.ManagedPolicy]

    @property
    def titles(self) -> list[str]:
        """Logical IDs of the role and its policies (what must outlive a dependant)."""
        return [self.role.title, *(p.title for p in self.policies)]


def create(stack: Stack, res: PipelineResources, tags: Tags) -> DeployRole:
    """Add the deploy role, with permissions for the per-run stacks' resource types."""
    role, policies = cloudformation_role(CLOUDFORMATION_ROLE, res, run_resource_types(stack.config), tags,
                                         batch=stack.config.deployment.batch)
    stack.add(role)
    for policy in policies:
        stack.add(policy)
    return DeployRole(role, policies)


def run_resource_types(config: Config) -> set[str]:
    """Resource types of the per-run stacks as CloudFormation creates them."""
    from mlops_templates import stacks

    found: set[str] = set()
    for name in stacks.run_stacks(config):
        for resource in stacks.module(name).build(config).resources.values():
            found.update(SAM_EXPANSION.get(resource.resource_type, (resource.resource_type,)))
    return found


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
    scope = scopes.run_scope(names.base, res.key_arn, res.artifact_bucket_arn, batch)
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
