"""Which handler actions a deploying role's policies do not allow.

For every resource of the stacks a role deploys, every action CloudFormation's handler
calls to create, read, update or delete it (``handler_permissions.json``) is checked
against the role's policies with the IAM evaluator, on the concrete ARN the action acts
on and with the request context IAM would see:

* the ARN: the resource's own, or another one its properties name (the role it passes,
  the key it encrypts with, the S3 object of its code), whichever matches the ARN
  format the Service Authorization Reference gives for the action's resource types;
  ``*`` for actions without resource-level permissions;
* ``aws:RequestTag/*`` and ``aws:TagKeys``: the resource's tags, where the action
  supports them, on create and update;
* ``aws:ResourceTag/*``: the resource's tags where supported, on update and delete
  only: **never while the resource is being created**, when a handler's calls may run
  before the resource exists or carries its tags, and never for read calls, which
  handlers also make at the end of a create (they return what they read back);
* ``iam:PassedToService``, ``codestar-connections:PassedToService``,
  ``iam:AWSServiceName``: the service the resource hands the role or connection to;
* ``iam:PermissionsBoundary``: a role's permissions boundary, where the action supports it.

Actions listed in ``withheld_permissions.json`` for the type are skipped: the file says
why this project never needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlops_templates.permissions import data
from mlops_templates.permissions.deployed import DeployedResource, DeployedStack
from mlops_templates.permissions.policy import Request, decide

#: The service a resource type hands its role to (``iam:PassedToService``).
PASSED_TO: dict[str, str] = {
    "AWS::ApiGateway::Account": "apigateway.amazonaws.com",
    "AWS::ApiGateway::RestApi": "apigateway.amazonaws.com",
    "AWS::ApplicationAutoScaling::ScalableTarget": "application-autoscaling.amazonaws.com",
    "AWS::CodeBuild::Project": "codebuild.amazonaws.com",
    "AWS::CodeDeploy::DeploymentGroup": "codedeploy.amazonaws.com",
    "AWS::CodePipeline::Pipeline": "codepipeline.amazonaws.com",
    "AWS::EC2::FlowLog": "vpc-flow-logs.amazonaws.com",
    "AWS::Events::Rule": "events.amazonaws.com",
    "AWS::Lambda::Function": "lambda.amazonaws.com",
    "AWS::SNS::Subscription": "sns.amazonaws.com",
    "AWS::SNS::Topic": "sns.amazonaws.com",
    "AWS::SageMaker::DataQualityJobDefinition": "sagemaker.amazonaws.com",
    "AWS::SageMaker::EndpointConfig": "sagemaker.amazonaws.com",
    "AWS::SageMaker::Model": "sagemaker.amazonaws.com",
    "AWS::SageMaker::MonitoringSchedule": "sagemaker.amazonaws.com",
    "AWS::Scheduler::Schedule": "scheduler.amazonaws.com",
    "AWS::ServiceCatalog::LaunchRoleConstraint": "servicecatalog.amazonaws.com",
    "AWS::StepFunctions::StateMachine": "states.amazonaws.com",
}
#: Service-linked roles a resource type may create (``iam:AWSServiceName``) and their ARN.
SERVICE_LINKED: dict[str, str] = {
    "AWS::ApplicationAutoScaling::ScalableTarget": "sagemaker.application-autoscaling.amazonaws.com",
}
SERVICE_LINKED_ROLES: dict[str, str] = {
    "sagemaker.application-autoscaling.amazonaws.com": (
        "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant"
    ),
}
#: Service prefixes renamed with a twin: IAM evaluates the action under the prefix of the
#: resource's ARN (a connection created before the CodeConnections rename keeps its
#: codestar-connections ARN).
TWINS = {"codestar-connections": "codeconnections"}
TAGGING_ACTIONS = ("TagResource", "AddTags", "TagRole", "CreateTags", "TagLogGroup", "TagPolicy")


@dataclass(frozen=True)
class Gap:
    """A handler action the role's policies do not allow."""

    stack: str
    logical_id: str
    kind: str
    operation: str
    action: str
    resource: str
    decision: str
    context: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        context = ", ".join(f"{k}={v}" for k, v in self.context)
        return (
            f"{self.kind} {self.operation}: {self.action} on {self.resource} "
            f"({self.decision}; {self.stack}/{self.logical_id}{'; ' + context if context else ''})"
        )


def role_documents(stack: DeployedStack, role_logical_id: str) -> list[dict[str, Any]]:
    """The identity policies of role ``role_logical_id`` in ``stack``."""
    role = stack.resources[role_logical_id]
    documents = [p["PolicyDocument"] for p in role.properties.get("Policies", [])]
    for policy in stack.of_type("AWS::IAM::ManagedPolicy").values():
        if role.name in policy.properties.get("Roles", []):
            documents.append(policy.properties["PolicyDocument"])
    return documents


#: Properties whose values are data for the resource (its code's environment, a state
#: machine's or an API's definition, tags, policies), not resources CloudFormation acts on.
DATA_PROPERTIES = frozenset(
    {"Environment", "Tags", "Description", "Definition", "DefinitionString", "Body",
     "EventPattern", "DefinitionSubstitutions", "Variables", "Stages", "InputTemplate",
     "PolicyDocument", "AssumeRolePolicyDocument", "KeyPolicy", "Policies"}
)
#: Keys that name a resource by name, not ARN, wherever they appear: key -> its ARN.
NAME_REFERENCES = {
    "Roles": "arn:{p}:iam::{a}:role/{name}",
    "FunctionName": "arn:{p}:lambda:{r}:{a}:function:{name}",
    "AlarmName": "arn:{p}:cloudwatch:{r}:{a}:alarm:{name}",
    "ApplicationName": "arn:{p}:codedeploy:{r}:{a}:application:{name}",
    "DeploymentConfigName": "arn:{p}:codedeploy:{r}:{a}:deploymentconfig:{name}",
}
#: Keys whose values are resources even inside a data property (a source connection
#: inside the pipeline's stages).
ALWAYS_REFERENCES = frozenset({"ConnectionArn"})
#: EC2 ID prefixes -> their resource type (properties name EC2 resources by ID).
EC2_ID_TYPES = {"sg": "security-group", "subnet": "subnet", "vpc": "vpc", "rtb": "route-table", "vpce": "vpc-endpoint"}


def _walk(node: Any, in_data: bool = False) -> Iterable[tuple[str | None, str]]:
    """``(key, string)`` for every string under ``node``, outside data properties."""
    if isinstance(node, dict):
        for key, value in node.items():
            inner = in_data or key in DATA_PROPERTIES
            if isinstance(value, str):
                if not inner or key in ALWAYS_REFERENCES:
                    yield key, value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                if not inner or key in ALWAYS_REFERENCES:
                    yield from ((key, v) for v in value)
            else:
                yield from _walk(value, inner)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, in_data)


def _s3_arns(uri: str, partition: str) -> list[str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    arns = [f"arn:{partition}:s3:::{bucket}"]
    if key:
        arns.append(f"arn:{partition}:s3:::{bucket}/{key}")
    return arns


def _implied(resource: DeployedResource, stack: DeployedStack) -> list[str]:
    """ARNs a resource acts on without naming them: the service-linked role and the
    alarms of a scalable target; the CodeDeploy application, group and configuration of
    a Lambda alias deployed through CodeDeploy (its UpdatePolicy)."""
    env = stack.env
    found = []
    service = SERVICE_LINKED.get(resource.kind)
    if service:
        found.append(f"arn:{env.partition}:iam::{env.account}:{SERVICE_LINKED_ROLES[service]}")
    if resource.kind == "AWS::ApplicationAutoScaling::ScalableTarget":
        found.append(
            f"arn:{env.partition}:cloudwatch:{env.region}:{env.account}:alarm:TargetTracking-"
            f"{resource.properties.get('ResourceId')}-AlarmHigh-00000000-0000-0000-0000-000000000000"
        )
    deploy = (resource.update_policy or {}).get("CodeDeployLambdaAliasUpdate")
    if deploy:
        app, group = deploy.get("ApplicationName"), deploy.get("DeploymentGroupName")
        base = f"arn:{env.partition}:codedeploy:{env.region}:{env.account}"
        found += [f"{base}:application:{app}", f"{base}:deploymentgroup:{app}/{group}"]
        for other in stack.of_type("AWS::CodeDeploy::DeploymentGroup").values():
            if other.name == group and other.properties.get("DeploymentConfigName"):
                found.append(f"{base}:deploymentconfig:{other.properties['DeploymentConfigName']}")
    return found


def candidate_arns(resource: DeployedResource, stack: DeployedStack) -> list[str]:
    """The resource's own ARN, then every ARN its properties name (by ARN, by name, by
    EC2 ID or by S3 URI) and the ones it acts on implicitly (:func:`_implied`)."""
    env = stack.env
    fields = {"p": env.partition, "r": env.region, "a": env.account}
    found: list[str] = [resource.arn] if resource.arn else []
    found += _implied(resource, stack)
    code = resource.properties.get("Code")
    if isinstance(code, dict) and "S3Bucket" in code:
        found.append(f"arn:{env.partition}:s3:::{code['S3Bucket']}/{code.get('S3Key', '')}")
    for key, text in _walk(resource.properties):
        ec2_id = re.fullmatch(r"(sg|subnet|vpc|rtb|vpce)-[0-9a-f]{8,17}", text)
        if ec2_id:
            kind = EC2_ID_TYPES[ec2_id.group(1)]
            found.append(f"arn:{env.partition}:ec2:{env.region}:{env.account}:{kind}/{text}")
        elif text.startswith("arn:"):
            found.append(text.removesuffix(":*") if ":log-group:" in text else text)
        elif text.startswith("s3://"):
            found.extend(_s3_arns(text, env.partition))
        elif text.startswith("https://") and ".s3." in text and ".amazonaws.com/" in text:
            host, _, object_key = text[len("https://"):].partition("/")
            found.extend(_s3_arns(f"s3://{host.split('.s3.')[0]}/{object_key}", env.partition))
        elif key in NAME_REFERENCES:
            found.append(NAME_REFERENCES[key].format(**fields, name=text))
    return list(dict.fromkeys(found))


def targets(info: data.ActionInfo, resource: DeployedResource, stack: DeployedStack) -> list[tuple[str, str | None]]:
    """``(ARN, IAM resource type)`` pairs the action acts on for ``resource``.

    An empty list means nothing the resource names fits the action's resource types.
    """
    service = info.name.split(":")[0]
    if not info.resource_types:
        return [("*", None)]
    matches: list[tuple[str, str | None]] = []
    for arn in candidate_arns(resource, stack):
        for rtype in info.resource_types:
            if data.arn_regex(service, rtype).match(arn):
                matches.append((arn, rtype))
                break
    if matches:
        own = [m for m in matches if m[0] == resource.arn]
        required = [r for r, req in info.resource_types.items() if req]
        # An action on the resource itself acts on its own ARN; one that needs another
        # resource type (a role to pass, a key) acts on the ARNs of that type.
        if own and (not required or own[0][1] in required):
            return own
        return [m for m in matches if m[0] != resource.arn] or own
    own_spec = resource.spec
    if not any(info.resource_types.values()) and resource.arn and own_spec and own_spec.service == service:
        return [(resource.arn, own_spec.iam_type)]
    return []


def _targets_or_twin(
    info: data.ActionInfo, resource: DeployedResource, stack: DeployedStack
) -> tuple[data.ActionInfo, list[tuple[str, str | None]]]:
    pairs = targets(info, resource, stack)
    prefix, _, short = info.name.partition(":")
    if not pairs and prefix in TWINS:
        twin = data.action(f"{TWINS[prefix]}:{short}")
        if twin is not None:
            return twin, targets(twin, resource, stack)
    return info, pairs


def request_context(
    info: data.ActionInfo,
    resource: DeployedResource,
    operation: str,
    target: str,
    rtype: str | None,
) -> dict[str, Any]:
    context: dict[str, Any] = {}
    tags = resource.tags
    own = target == resource.arn
    short = info.name.split(":")[1]
    tagging = short.startswith(("Create", "Put", "Register")) or short in TAGGING_ACTIONS
    if tags and operation in ("create", "update") and tagging:
        for key, value in tags.items():
            name = f"aws:RequestTag/{key}"
            if info.supports(name, rtype):
                context[name] = value
        if info.supports("aws:TagKeys", rtype):
            context["aws:TagKeys"] = sorted(tags)
    if tags and own and operation in ("update", "delete"):
        for key, value in tags.items():
            name = f"aws:ResourceTag/{key}"
            if info.supports(name, rtype):
                context[name] = value
    if info.name == "iam:PassRole" and resource.kind in PASSED_TO:
        context["iam:PassedToService"] = PASSED_TO[resource.kind]
    if info.name.endswith(":PassConnection"):
        prefix = info.name.split(":")[0]
        context[f"{prefix}:PassedToService"] = PASSED_TO.get(resource.kind, "")
    boundary = resource.properties.get("PermissionsBoundary")
    if boundary and info.supports("iam:PermissionsBoundary", rtype):
        # The boundary the request sets (CreateRole, PutRolePermissionsBoundary) or the
        # role has: the same one in a deployed stack.
        context["iam:PermissionsBoundary"] = boundary
    if info.name == "iam:CreateServiceLinkedRole" and resource.kind in SERVICE_LINKED:
        context["iam:AWSServiceName"] = SERVICE_LINKED[resource.kind]
    return context


def gaps(
    stack: DeployedStack,
    documents: list[dict[str, Any]],
    operations: tuple[str, ...] = data.OPERATIONS,
) -> list[Gap]:
    """Handler actions of ``stack``'s resources that ``documents`` do not allow."""
    found: list[Gap] = []
    withheld = data.withheld()
    for logical_id, resource in sorted(stack.resources.items()):
        kind = data.canonical(resource.kind)
        table = data.handlers().get(kind)
        if table is None:
            found.append(Gap(stack.name, logical_id, kind, "-", "-", "-", "type not in handler_permissions.json"))
            continue
        skip = withheld.get(kind, {})
        for operation in operations:
            for action in table.get(operation, []):
                if action in skip:
                    continue
                info = data.action(action)
                if info is None:
                    found.append(Gap(stack.name, logical_id, kind, operation, action, "-",
                                     "not in the Service Authorization Reference: withhold it with the reason"))
                    continue
                info, pairs = _targets_or_twin(info, resource, stack)
                if not pairs:
                    # Nothing the resource names fits the action: the handler does not call
                    # it for this resource (``used_actions`` finds grants no resource uses).
                    continue
                for target, rtype in pairs:
                    context = request_context(info, resource, operation, target, rtype)
                    decision = decide(documents, Request(info.name, target, context))
                    if decision != "Allow":
                        found.append(Gap(
                            stack.name, logical_id, kind, operation, info.name, target, decision,
                            tuple(sorted((k, str(v)) for k, v in context.items())),
                        ))
    return found


def dedupe(items: Iterable[Gap]) -> list[Gap]:
    """One gap per (type, operation, action), for readable reports."""
    seen: dict[tuple[str, str, str], Gap] = {}
    for gap in items:
        seen.setdefault((gap.kind, gap.operation, gap.action), gap)
    return list(seen.values())


def format_gaps(items: Iterable[Gap]) -> str:
    return "\n".join(str(gap) for gap in dedupe(items))


def used_actions(stacks: Iterable[DeployedStack]) -> dict[str, set[str]]:
    """Resource type -> the handler actions that act on something for some resource."""
    used: dict[str, set[str]] = {}
    for stack in stacks:
        for resource in stack.resources.values():
            table = data.handlers().get(data.canonical(resource.kind), {})
            for action in {a for actions in table.values() for a in actions}:
                info = data.action(action)
                if info is None:
                    continue
                _, pairs = _targets_or_twin(info, resource, stack)
                if pairs:
                    used.setdefault(data.canonical(resource.kind), set()).add(action)
    return used


__all__ = [
    "Gap", "candidate_arns", "dedupe", "format_gaps", "gaps", "role_documents", "targets",
    "used_actions",
]
