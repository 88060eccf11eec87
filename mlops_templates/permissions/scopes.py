"""Where each deploying role may act: the project's ARNs per IAM resource type.

Two roles deploy stacks:

* the Service Catalog **launch role** (studio stack) creates any project's pipeline
  stack, so its scope is every name under the organisation prefix (``<prefix>-*``);
* the pipeline's **CloudFormation role** deploys one project's per-run stacks, so its
  scope is that project's names (``<prefix>-<project>-*``).

What each needs is not listed here: :mod:`grants` derives it from the resource types
of the stacks (the registry schemas' handler permissions). A comment says why a
pattern is a wildcard.
"""

from __future__ import annotations

from typing import Any

from awacs.aws import Condition, StringEquals, StringLike
from troposphere import Join, Sub

from mlops_templates import naming
from mlops_templates.permissions.grants import Scope
from mlops_templates.stacks.common import arn

#: Role-name suffixes of the pipeline stack (``<prefix>-<project>-<suffix>``).
PIPELINE_ROLE_SUFFIXES = (
    "codepipeline", "codebuild", "cloudformation", "sagemaker", "states", "events",
    "flow-logs", "teardown", "promote",
)
#: Services the pipeline stack hands its roles to.
PIPELINE_PASSED_TO = (
    "codebuild.amazonaws.com",
    "codepipeline.amazonaws.com",
    "events.amazonaws.com",
    "lambda.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
)
#: Name prefixes of the roles the per-run stacks create (``<prefix>-<project>-<component>-``).
RUN_ROLE_COMPONENTS = ("prd",)
#: Services the per-run stacks hand roles to.
RUN_PASSED_TO = (
    "codedeploy.amazonaws.com",
    "lambda.amazonaws.com",
    "sagemaker.amazonaws.com",
    "scheduler.amazonaws.com",
    "states.amazonaws.com",
)
#: Application Auto Scaling's service-linked role for SageMaker endpoint variants.
AUTOSCALING_SLR = (
    "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant"
)

#: The calls that give a role permissions: the CloudFormation role makes them only on roles
#: whose permissions boundary is the project's (``iam:PermissionsBoundary``, which each of
#: them supports: IAM User Guide, "Permissions boundaries for IAM entities"), so a role a
#: per-run template declares can never hold more than the boundary allows. Removing
#: permissions (DeleteRolePolicy, DetachRolePolicy) stays unconditioned: a role created
#: before the boundary must still be cleaned up; DeleteRolePermissionsBoundary is never
#: granted (withheld_permissions.json).
BOUNDED = ("iam:AttachRolePolicy", "iam:CreateRole", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy")

_APIGW = {"region": True, "account": False}


def _apigw(*paths: str) -> tuple[Any, ...]:
    # API Gateway generates API, stage, deployment, key and plan IDs; management ARNs
    # carry no account.
    return tuple(arn("apigateway", path, **_APIGW) for path in paths)


def _ec2(kind: str) -> tuple[Any, ...]:
    # EC2 generates every ID these resources get.
    return (arn("ec2", f"{kind}/*"),)


def launch_scope(prefix: str, connection_arn: str | None, uses_connection: bool) -> Scope:
    """Any project's pipeline stack under ``prefix`` (the Service Catalog launch role).

    ``connection_arn``: the configured source connection (None: asked for at launch);
    ``uses_connection``: False when the source is CodeCommit.
    """
    named = f"{prefix}-*"
    roles = tuple(arn("iam", f"role/{prefix}-*-{suffix}", region=False) for suffix in PIPELINE_ROLE_SUFFIXES)
    resources: dict[tuple[str, str], tuple[Any, ...]] = {
        ("codebuild", "project"): (arn("codebuild", f"project/{named}"),),
        ("codepipeline", "pipeline"): (arn("codepipeline", named),),
        ("ecr", "repository"): (arn("ecr", f"repository/{named}"),),
        ("events", "rule-on-default-event-bus"): (arn("events", f"rule/{named}"),),
        ("iam", "role"): roles,
        # The CloudFormation role's managed policies and the per-run roles' boundary only
        # (never the launch role's own).
        ("iam", "policy"): (
            arn("iam", f"policy/{prefix}-*-cloudformation-*", region=False),
            arn("iam", f"policy/{prefix}-*-boundary", region=False),
        ),
        ("kms", "alias"): (arn("kms", f"alias/{named}"),),
        # Key IDs are generated: the tag condition scopes what happens after creation.
        ("kms", "key"): (arn("kms", "key/*"),),
        ("lambda", "function"): (arn("lambda", f"function:{named}"),),
        ("logs", "log-group"): (arn("logs", f"log-group:/{prefix}/*"),),
        ("s3", "bucket"): (arn("s3", named, region=False, account=False),),
        ("sns", "topic"): (arn("sns", named),),
        ("ec2", "vpc"): _ec2("vpc"),
        ("ec2", "subnet"): _ec2("subnet"),
        ("ec2", "route-table"): _ec2("route-table"),
        ("ec2", "security-group"): _ec2("security-group"),
        ("ec2", "vpc-endpoint"): _ec2("vpc-endpoint"),
        ("vpce", "vpc-endpoint"): _ec2("vpc-endpoint"),
        ("ec2", "vpc-flow-log"): _ec2("vpc-flow-log"),
    }
    for service in ("codestar-connections", "codeconnections"):
        if not uses_connection:
            continue
        if connection_arn is None:
            # Without a configured connection, the product asks for one at launch.
            resources[(service, "Connection")] = (arn(service, "connection/*"),)
        elif f":{service}:" in connection_arn:
            resources[(service, "Connection")] = (connection_arn,)
    return Scope(
        resources=resources,
        tagged=frozenset({("kms", "key")}),
        absent=frozenset(
            # The pipeline's functions carry their code inline: no S3 object to read.
            {("s3", "object"), ("s3", "accesspointobject")}
            | (
                set()
                if uses_connection
                else {("codestar-connections", "Connection"), ("codeconnections", "Connection")}
            )
        ),
        tag=(naming.PROJECT_TAG, named),
        tag_operator=StringLike,
        conditions={
            "iam:PassRole": Condition(StringEquals("iam:PassedToService", list(PIPELINE_PASSED_TO))),
            "codestar-connections:PassConnection": Condition(
                StringEquals("codestar-connections:PassedToService", "codepipeline.amazonaws.com")
            ),
            "codeconnections:PassConnection": Condition(
                StringEquals("codeconnections:PassedToService", "codepipeline.amazonaws.com")
            ),
        },
    )


def run_scope(base: str, key_arn: Any, artifact_bucket_arn: Any, batch: bool, boundary_arn: Any) -> Scope:
    """One project's per-run stacks (the pipeline's CloudFormation role).

    ``base``: ``<prefix>-${SageMakerProjectName}`` (a ``Fn::Sub`` text). Long because it is
    one table: the ARN patterns of every resource type the per-run stacks create. ``batch``:
    the batch stack is deployed too (its roles ``<base>-batch-*``; its upload rule passes its
    role to EventBridge). ``boundary_arn``: the permissions boundary every role it creates
    must carry (:data:`BOUNDED`).
    """
    named = f"{base}-*"
    stack_roles = tuple(
        arn("iam", f"role/{base}-{component}-*", region=False)
        for component in RUN_ROLE_COMPONENTS + (("batch",) if batch else ())
    )
    passed_to = RUN_PASSED_TO + (("events.amazonaws.com",) if batch else ())
    functions = (arn("lambda", f"function:{named}"),)
    passed = stack_roles + tuple(
        arn("iam", f"role/{base}-{suffix}", region=False) for suffix in ("sagemaker", "states")
    )
    # API Gateway authorizes a call by its method on the path it requests ("Control access
    # for managing an API"): a create is a POST on the collection (/restapis), everything
    # else on an API is under its path, and tagging any of its resources is a PUT on
    # /tags/<ARN>, granted with the API's (an API key or usage plan exists only with the
    # API). The API's deployments and stages get the API's patterns (one statement, not a
    # subset of it), a usage plan's keys the plan's.
    rest_api = _apigw("/restapis", "/restapis/*", "/tags/*")
    usage_plan = _apigw("/usageplans", "/usageplans/*")
    resources: dict[tuple[str, str], tuple[Any, ...]] = {
        ("apigateway", "RestApi"): rest_api,
        ("apigateway", "Deployment"): rest_api,
        ("apigateway", "Stage"): rest_api,
        ("apigateway", "ApiKey"): _apigw("/apikeys", "/apikeys/*"),
        ("apigateway", "UsagePlan"): usage_plan,
        ("apigateway", "UsagePlanKey"): usage_plan,
        # Application Auto Scaling generates scalable-target IDs.
        ("application-autoscaling", "ScalableTarget"): (
            arn("application-autoscaling", "scalable-target/*"),
        ),
        ("cloudwatch", "alarm"): (
            arn("cloudwatch", f"alarm:{named}"),
            # Target tracking names its alarms after the endpoint.
            arn("cloudwatch", f"alarm:TargetTracking-endpoint/{named}"),
        ),
        # Dashboards are global: their ARNs carry no region.
        ("cloudwatch", "dashboard"): (arn("cloudwatch", f"dashboard/{named}", region=False),),
        ("events", "rule-on-default-event-bus"): (arn("events", f"rule/{named}"),),
        ("scheduler", "schedule"): (arn("scheduler", f"schedule/default/{named}"),),
        ("codedeploy", "application"): (arn("codedeploy", f"application:{named}"),),
        ("codedeploy", "deploymentgroup"): (arn("codedeploy", f"deploymentgroup:{named}"),),
        # CodeDeploy's predefined CodeDeployDefault.Lambda* configurations.
        ("codedeploy", "deploymentconfig"): (arn("codedeploy", "deploymentconfig:*"),),
        ("iam", "role"): stack_roles,
        ("kms", "key"): (key_arn,),
        # ``<base>-*`` also covers a function's aliases and versions
        # (``function:<name>:<qualifier>``).
        ("lambda", "function"): functions,
        ("lambda", "function alias"): functions,
        ("lambda", "function version"): functions,
        ("logs", "log-group"): (
            arn("logs", f"log-group:{named}"),
            arn("logs", f"log-group:/aws/vendedlogs/states/{named}"),
        ),
        # Packaged Lambda code.
        ("s3", "object"): (Join("", [artifact_bucket_arn, "/packages/*"]),),
        ("sagemaker", "endpoint"): (arn("sagemaker", f"endpoint/{named}"),),
        # CloudFormation generates model, endpoint-config and job-definition names so that
        # replacements never collide: tags scope what happens after creation.
        ("sagemaker", "endpoint-config"): (arn("sagemaker", "endpoint-config/*"),),
        ("sagemaker", "model"): (arn("sagemaker", "model/*"),),
        ("sagemaker", "data-quality-job-definition"): (
            arn("sagemaker", "data-quality-job-definition/*"),
        ),
        ("sagemaker", "model-package-group"): (arn("sagemaker", f"model-package-group/{named}"),),
        ("sagemaker", "monitoring-schedule"): (arn("sagemaker", f"monitoring-schedule/{named}"),),
        ("sns", "topic"): (arn("sns", named),),
        ("states", "statemachine"): (arn("states", f"stateMachine:{named}"),),
    }
    return Scope(
        resources=resources,
        tagged=frozenset(
            {
                ("sagemaker", "endpoint-config"),
                ("sagemaker", "model"),
                ("sagemaker", "data-quality-job-definition"),
            }
        ),
        tag=(naming.PROJECT_TAG, Sub(base)),
        overrides={
            "iam:PassRole": passed,
            "iam:CreateServiceLinkedRole": (arn("iam", AUTOSCALING_SLR, region=False),),
        },
        conditions={
            "iam:PassRole": Condition(StringEquals("iam:PassedToService", list(passed_to))),
            "iam:CreateServiceLinkedRole": Condition(
                StringEquals("iam:AWSServiceName", "sagemaker.application-autoscaling.amazonaws.com")
            ),
            **{action: Condition(StringEquals("iam:PermissionsBoundary", boundary_arn)) for action in BOUNDED},
        },
    )


def boundary_scope(base: str, key_arn: Any, bucket_arns: tuple[Any, ...]) -> Scope:
    """What the roles of one project's per-run stacks may ever act on (their permissions
    boundary, :mod:`boundary`): the project's names under ``base`` (a ``Fn::Sub`` text), its
    key and its buckets (``bucket_arns``). Narrower than :func:`run_scope`: only the resource
    types those roles' policies name.
    """
    named = f"{base}-*"
    functions = (arn("lambda", f"function:{named}"),)
    return Scope(
        resources={
            ("codedeploy", "deploymentgroup"): (arn("codedeploy", f"deploymentgroup:{named}"),),
            # Lambda's network interfaces in the project's VPC: EC2 generates their IDs.
            ("ec2", "network-interface"): _ec2("network-interface"),
            ("ec2", "subnet"): _ec2("subnet"),
            ("ec2", "security-group"): _ec2("security-group"),
            # The rules Step Functions manages for its .sync SageMaker integrations.
            ("events", "rule-on-default-event-bus"): tuple(
                arn("events", f"rule/StepFunctionsGetEventsForSageMaker{kind}JobsRule")
                for kind in ("Processing", "Transform")
            ),
            # The only role the per-run roles pass: the project's SageMaker role.
            ("iam", "role"): (arn("iam", f"role/{base}-sagemaker", region=False),),
            ("kms", "key"): (key_arn,),
            ("lambda", "function"): functions,
            # The calls that take an alias or a version (CodeDeploy's
            # GetProvisionedConcurrencyConfig) act within the function's pattern.
            ("lambda", "function alias"): functions,
            # The streams of the per-run stacks' log groups, whose names start with the
            # stack's (``log-group:<name>:log-stream:<stream>``; the roles name them
            # ``log-group:<name>:*``).
            ("logs", "log-stream"): (arn("logs", f"log-group:{named}:*"),),
            ("s3", "bucket"): bucket_arns,
            ("s3", "object"): tuple(Join("", [bucket, "/*"]) for bucket in bucket_arns),
            ("sagemaker", "endpoint"): (arn("sagemaker", f"endpoint/{named}"),),
            ("sagemaker", "model"): (arn("sagemaker", f"model/{named}"),),
            ("sagemaker", "model-package"): (arn("sagemaker", f"model-package/{base}-models/*"),),
            ("sagemaker", "processing-job"): (arn("sagemaker", f"processing-job/{named}"),),
            ("sagemaker", "transform-job"): (arn("sagemaker", f"transform-job/{named}"),),
            ("sns", "topic"): (arn("sns", named),),
            ("states", "statemachine"): (arn("states", f"stateMachine:{named}"),),
        },
        # Calls IAM authorizes on "*" (runtime_permissions.json): CodeDeploy reads the
        # rollback alarms with DescribeAlarms; the batch run finds the newest approved model
        # with ListModelPackages.
        overrides={"cloudwatch:DescribeAlarms": ("*",), "sagemaker:ListModelPackages": ("*",)},
    )
