"""The ci-oidc stack: GitHub Actions or GitLab CI builds, trains and deploys the project
without long-lived keys.

Rendered when ``pipeline.orchestrator`` is ``github`` or ``gitlab``; deployed once per
project after the pipeline stack (``make deploy``'s system stage includes it). It creates:

- the IAM OIDC identity provider of the CI issuer (``token.actions.githubusercontent.com``
  or the GitLab instance), unless ``pipeline.ci.oidc_provider_arn`` names the account's
  existing one: IAM allows one provider per issuer URL in an account. The provider is
  kept when the stack is deleted (other projects and repositories of the account may
  trust it too); a failed first create still removes it;
- the role ``<prefix>-<project>-ci``, which only the configured repository's jobs on the
  configured branch (and, on GitHub, its production environment) may assume, with what
  the CI job does: read the pipeline stack's outputs, find the training data, push the
  image, package the per-run stacks into the artifact bucket, deploy them passing the
  pipeline's CloudFormation role (which holds the permissions the stacks' resources
  need), and start and follow the training workflow. It is the CodePipeline path's
  permissions for the same calls (:mod:`mlops_templates.stacks.pipeline.roles` builds
  both), without what CodePipeline and CodeBuild need for themselves.

The pipeline stack's resources are named, not imported: the pipeline stack is deployed
with ``SageMakerProjectName`` = ``project.name``, so its bucket, repository, stack, state
machine and role names are known; its key (whose ID AWS generates) is matched by its
alias (``kms:ResourceAliases``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from awacs import cloudformation as cfn
from awacs import kms as kms_actions
from awacs import s3 as s3_actions
from awacs import sagemaker as sagemaker_actions
from awacs import sts
from awacs.aws import (
    Allow,
    Condition,
    ForAnyValueStringEquals,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
)
from troposphere import GetAtt, Output, Ref, Template, iam

from mlops_templates import iam as iamdoc
from mlops_templates import naming
from mlops_templates.ci import oidc
from mlops_templates.config import Config
from mlops_templates.stacks import common
from mlops_templates.stacks.pipeline import roles as pipeline_roles
from mlops_templates.stacks.pipeline.names import DeployedNames
from mlops_templates.stacks.pipeline.policies import PipelineResources
from mlops_templates.stacks.stack import Stack

COMPONENT = "ci-oidc"
PROVIDER = "OidcProvider"
ROLE = "CiRole"
#: The longest session the role grants: a GitHub-hosted runner ends a job after 6 hours
#: (GitHub docs, "Usage limits": "Each job in a workflow can run for up to 6 hours of
#: execution time"), so the training job's credentials last while it waits.
MAX_SESSION_SECONDS = 6 * 3600
#: Where the CI job writes in the artifact bucket: ``aws cloudformation package`` uploads
#: code and templates under ``packages/<run id>/`` (as the CodeBuild build does).
PACKAGES_PREFIX = "packages/"

#: Every wildcard resource of the CI role, as a regular expression over its text, with the
#: reason AWS requires it; a test rejects any other.
JUSTIFIED_WILDCARDS: tuple[tuple[str, str], ...] = (
    (r"^\*$", "ecr:GetAuthorizationToken supports no resource-level permissions"),
    (r":kms:\$\{AWS::Region\}:\$\{AWS::AccountId\}:key/\*$",
     "the project key's ID is generated; kms:ResourceAliases limits it to the key with the project's alias"),
    (r":s3:::[a-z0-9-]+-\$\{AWS::AccountId\}-\$\{AWS::Region\}-art/packages/\*$",
     "packaged code and templates of every run, under the run's id"),
    (r":stack/[a-z0-9-]+-(pipeline|workflow|deploy-dev|deploy-prd)/\*$", "a stack ARN ends with its generated ID"),
    (r":execution:[a-z0-9-]+-training:\*$", "execution names are given per run"),
    (r":model-package/[a-z0-9-]+-models/\*$", "version numbers are given at registration, one per run"),
)


def enabled(config: Config) -> bool:
    """Rendered and deployed only when a CI system orchestrates."""
    return config.pipeline.orchestrator != "codepipeline"


@dataclass(frozen=True)
class Identity:
    """Who may assume the role: the provider's ARN and the trusted claims."""

    provider_arn: Any
    trust: oidc.Trust


def build(config: Config) -> Template:
    """The ci-oidc stack for ``config`` (see the module docstring for its resources)."""
    stack = Stack.new(config, COMPONENT, "OIDC trust and deploy role of the project's CI workflow")
    identity = provider(stack)
    role = ci_role(stack, identity)
    stack.template.add_output(
        [
            Output(
                "RoleArn",
                Description="The CI role: the workflow's AWS_ROLE_ARN variable",
                Value=GetAtt(role, "Arn"),
            ),
            Output("OidcProviderArn", Description="The OIDC provider the role trusts", Value=identity.provider_arn),
        ]
    )
    return stack.describe(
        f"The {identity.trust.orchestrator} CI workflow of {naming.base(config)} exchanges its OIDC "
        "token for the CI role, which builds, trains and deploys the per-run stacks through the "
        "pipeline stack's CloudFormation role",
        must=[
            (
                "Only the configured repository's branch (and, on GitHub, its production "
                "environment) may assume the role: its trust policy matches aud and sub exactly"
            ),
        ],
    )


def provider(stack: Stack) -> Identity:
    """The issuer's OIDC provider: the configured one, or one this stack creates."""
    config = stack.config
    trust = oidc.trust(config)
    existing = config.pipeline.ci.oidc_provider_arn
    if existing is not None:
        return Identity(existing, trust)
    created = iam.OIDCProvider(
        PROVIDER,
        Url=trust.issuer,
        ClientIdList=[trust.audience],
        # No ThumbprintList: IAM verifies GitHub's and GitLab's certificates with its own
        # trusted root CAs and ignores thumbprints for them (IAM API reference,
        # UpdateOpenIDConnectProviderThumbprint); CloudFormation's property is optional.
        Tags=stack.tags(),
        DeletionPolicy=common.RETAIN,
        UpdateReplacePolicy="Retain",
    )
    stack.add(
        created,
        why=f"Lets IAM trust ID tokens of {trust.issuer} (one provider per issuer URL and account; "
        "kept on delete: other projects of the account may trust it)",
    )
    return Identity(Ref(created), trust)


def _resources(config: Config) -> PipelineResources:
    """The pipeline stack's resources, by the names it gives them."""
    names = DeployedNames.of(config)
    return PipelineResources(
        names=names,
        key_arn=common.arn("kms", "key/*"),
        artifact_bucket_arn=common.arn("s3", names.bucket_text("art"), region=False, account=False),
        data_bucket_arn=common.arn("s3", names.bucket_text("data"), region=False, account=False),
        data_prefix=config.pipeline.data_prefix,
        topic_arn=common.arn("sns", names.text("notifications")),
        repository_arn=common.arn("ecr", f"repository/{names.base}"),
        log_group_arn=None,
        build_project_arns=[],
        connection_arn=None,
        codecommit_repository=None,
    )


def statements(config: Config) -> list[Statement]:
    """What the CI job calls, on the project's resources only."""
    res = _resources(config)
    names = res.names
    cloudformation_role = common.arn("iam", f"role/{names.text('cloudformation')}", region=False)
    return [
        # The job reads the pipeline stack's outputs for the build's environment.
        iamdoc.allow([cfn.DescribeStacks], res.stack_arn("pipeline"), sid="ReadPipelineOutputs"),
        pipeline_roles.find_training_data(res),
        *pipeline_roles.push_image(res),
        # `aws cloudformation package` and the deploy step upload code and templates;
        # CloudFormation reads a template from S3 with the caller's permissions.
        iamdoc.allow(
            [s3_actions.PutObject, s3_actions.GetObject],
            common.arn("s3", f"{names.bucket_text('art')}/{PACKAGES_PREFIX}*", region=False, account=False),
            sid="PackageRunStacks",
        ),
        # The key's ID is generated; its alias names it ("Use aliases to control access to KMS
        # keys", AWS KMS developer guide: kms:ResourceAliases).
        iamdoc.allow(
            [kms_actions.Decrypt, kms_actions.Encrypt, kms_actions.GenerateDataKey, kms_actions.DescribeKey],
            res.key_arn,
            conditions=Condition(ForAnyValueStringEquals("kms:ResourceAliases", f"alias/{names.base}")),
            sid="UseProjectKey",
        ),
        *pipeline_roles.deploy_run_stacks(res),
        iamdoc.pass_role(cloudformation_role, "cloudformation.amazonaws.com", sid="PassDeployRole"),
        *pipeline_roles.run_training(res),
        # The production job records its approval in the model registry first.
        iamdoc.allow(
            [sagemaker_actions.UpdateModelPackage],
            common.arn("sagemaker", f"model-package/{names.text('models')}/*"),
            sid="ApproveRunModel",
        ),
    ]


def trust_policy(identity: Identity) -> PolicyDocument:
    """Only the trusted ``sub`` claims, with the configured audience, may assume the role."""
    trust = identity.trust
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[
            Statement(
                Effect=Allow,
                Principal=Principal("Federated", identity.provider_arn),
                Action=[sts.AssumeRoleWithWebIdentity],
                Condition=Condition(
                    StringEquals(
                        {f"{trust.host}:aud": trust.audience, f"{trust.host}:sub": list(trust.subjects)}
                    )
                ),
            )
        ],
    )


def ci_role(stack: Stack, identity: Identity) -> iam.Role:
    """The role the CI jobs assume with their ID token."""
    config = stack.config
    return stack.add(
        iam.Role(
            ROLE,
            RoleName=naming.physical_name(config, "ci"),
            Description=f"Builds, trains and deploys {naming.base(config)} from "
            f"{config.pipeline.ci_repository} ({config.pipeline.orchestrator}, OIDC)",
            AssumeRolePolicyDocument=trust_policy(identity),
            MaxSessionDuration=MAX_SESSION_SECONDS,
            Policies=[iamdoc.inline_policy("ci", *statements(config))],
            Tags=stack.tags(),
        ),
        why="The CI workflow's identity in AWS: the CodePipeline path's build and deploy "
        "permissions, for the configured repository and branch only",
    )
