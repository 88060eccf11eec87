"""A rendered template as CloudFormation would deploy it: intrinsics resolved, physical
names given, ARNs built.

Given the stack name, an account, a region and the Parameter values, every resource gets
the physical name CloudFormation gives it (its name property, or a generated
``<stack>-<LogicalId>-<SUFFIX>`` in the shape and length limit of its type), its ARN in
the format the Service Authorization Reference gives, and its tags; every ``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::If``,
``Fn::FindInMap`` and ``Fn::GetAZs`` in its properties is evaluated. The permission
checks evaluate the roles' policies against these concrete values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "111122223333"
REGION = "us-east-1"
PARTITION = "aws"


@dataclass(frozen=True)
class Environment:
    account: str = ACCOUNT
    region: str = REGION
    partition: str = PARTITION


class UnresolvedValue(str):
    """A value the model cannot know (an attribute it does not compute)."""


@dataclass(frozen=True)
class TypeSpec:
    """How CloudFormation names a resource type and what its ARN looks like.

    ``name``: the property that names it (None: always generated). ``style``: the
    shape of a generated name (``stack``: ``<stack>-<Logical>-<SUFFIX>``, ``logical``:
    ``<Logical>-<suffix>``, ``id``: an opaque ID). ``limit``: maximum name length.
    ``arn``: the ARN, with ``{name}``, ``{p}``, ``{r}``, ``{a}`` placeholders (None:
    the resource has no ARN of its own). ``ref``: what ``Ref`` returns (``name`` or
    ``arn``). ``service``/``iam_type``: its resource type in the IAM reference.
    """

    service: str | None
    iam_type: str | None
    arn: str | None
    name: str | None = None
    style: str = "stack"
    limit: int = 255
    ref: str = "name"
    lower: bool = False
    id_prefix: str = ""


def _sm(iam_type: str, name: str | None) -> TypeSpec:
    # Ref of every SageMaker type here is its ARN (the CloudFormation reference's
    # "Return values"); the name is the <Name> attribute.
    return TypeSpec(
        "sagemaker", iam_type, f"arn:{{p}}:sagemaker:{{r}}:{{a}}:{iam_type}/{{name}}",
        name=name, style="logical", limit=63, lower=True, ref="arn",
    )


_APIGW = "arn:{p}:apigateway:{r}::"

TYPES: dict[str, TypeSpec] = {
    "AWS::ApiGateway::Account": TypeSpec("apigateway", "Account", _APIGW + "/account", style="id"),
    "AWS::ApiGateway::ApiKey": TypeSpec("apigateway", "ApiKey", _APIGW + "/apikeys/{name}", style="id"),
    "AWS::ApiGateway::Deployment": TypeSpec("apigateway", "Deployment", _APIGW + "/restapis/{RestApiId}/deployments/{name}", style="id"),
    "AWS::ApiGateway::RestApi": TypeSpec("apigateway", "RestApi", _APIGW + "/restapis/{name}", style="id"),
    "AWS::ApiGateway::Stage": TypeSpec("apigateway", "Stage", _APIGW + "/restapis/{RestApiId}/stages/{name}", name="StageName"),
    "AWS::ApiGateway::UsagePlan": TypeSpec("apigateway", "UsagePlan", _APIGW + "/usageplans/{name}", style="id"),
    "AWS::ApiGateway::UsagePlanKey": TypeSpec("apigateway", "UsagePlanKey", _APIGW + "/usageplans/{UsagePlanId}/keys/{KeyId}", style="id"),
    "AWS::ApplicationAutoScaling::ScalableTarget": TypeSpec(
        "application-autoscaling", "ScalableTarget",
        "arn:{p}:application-autoscaling:{r}:{a}:scalable-target/{name}", style="id",
    ),
    "AWS::ApplicationAutoScaling::ScalingPolicy": TypeSpec(
        "application-autoscaling", "ScalableTarget",
        "arn:{p}:application-autoscaling:{r}:{a}:scalable-target/{name}", style="id", ref="arn",
    ),
    "AWS::CloudFormation::CustomResource": TypeSpec("lambda", "function", "{ServiceToken}", style="id"),
    "AWS::CloudWatch::Alarm": TypeSpec("cloudwatch", "alarm", "arn:{p}:cloudwatch:{r}:{a}:alarm:{name}", name="AlarmName"),
    "AWS::CloudWatch::Dashboard": TypeSpec("cloudwatch", "dashboard", "arn:{p}:cloudwatch::{a}:dashboard/{name}", name="DashboardName"),
    "AWS::CodeBuild::Project": TypeSpec("codebuild", "project", "arn:{p}:codebuild:{r}:{a}:project/{name}", name="Name"),
    "AWS::CodeDeploy::Application": TypeSpec("codedeploy", "application", "arn:{p}:codedeploy:{r}:{a}:application:{name}", name="ApplicationName"),
    "AWS::CodeDeploy::DeploymentGroup": TypeSpec(
        "codedeploy", "deploymentgroup",
        "arn:{p}:codedeploy:{r}:{a}:deploymentgroup:{ApplicationName}/{name}", name="DeploymentGroupName",
    ),
    "AWS::CodePipeline::Pipeline": TypeSpec("codepipeline", "pipeline", "arn:{p}:codepipeline:{r}:{a}:{name}", name="Name"),
    "AWS::EC2::FlowLog": TypeSpec("ec2", "vpc-flow-log", "arn:{p}:ec2:{r}:{a}:vpc-flow-log/{name}", style="id", id_prefix="fl-"),
    "AWS::EC2::RouteTable": TypeSpec("ec2", "route-table", "arn:{p}:ec2:{r}:{a}:route-table/{name}", style="id", id_prefix="rtb-"),
    "AWS::EC2::SecurityGroup": TypeSpec("ec2", "security-group", "arn:{p}:ec2:{r}:{a}:security-group/{name}", style="id", id_prefix="sg-"),
    "AWS::EC2::SecurityGroupEgress": TypeSpec("ec2", "security-group-rule", "arn:{p}:ec2:{r}:{a}:security-group-rule/{name}", style="id", id_prefix="sgr-"),
    "AWS::EC2::SecurityGroupIngress": TypeSpec("ec2", "security-group-rule", "arn:{p}:ec2:{r}:{a}:security-group-rule/{name}", style="id", id_prefix="sgr-"),
    "AWS::EC2::Subnet": TypeSpec("ec2", "subnet", "arn:{p}:ec2:{r}:{a}:subnet/{name}", style="id", id_prefix="subnet-"),
    "AWS::EC2::SubnetRouteTableAssociation": TypeSpec("ec2", "route-table", None, style="id", id_prefix="rtbassoc-"),
    "AWS::EC2::VPC": TypeSpec("ec2", "vpc", "arn:{p}:ec2:{r}:{a}:vpc/{name}", style="id", id_prefix="vpc-"),
    "AWS::EC2::VPCEndpoint": TypeSpec("ec2", "vpc-endpoint", "arn:{p}:ec2:{r}:{a}:vpc-endpoint/{name}", style="id", id_prefix="vpce-"),
    "AWS::ECR::Repository": TypeSpec("ecr", "repository", "arn:{p}:ecr:{r}:{a}:repository/{name}", name="RepositoryName", lower=True),
    "AWS::Events::Rule": TypeSpec("events", "rule-on-default-event-bus", "arn:{p}:events:{r}:{a}:rule/{name}", name="Name", limit=64),
    "AWS::IAM::ManagedPolicy": TypeSpec("iam", "policy", "arn:{p}:iam::{a}:policy/{name}", name="ManagedPolicyName", ref="arn"),
    "AWS::IAM::OIDCProvider": TypeSpec("iam", "oidc-provider", "arn:{p}:iam::{a}:oidc-provider/{name}", style="id", ref="arn"),
    "AWS::IAM::Role": TypeSpec("iam", "role", "arn:{p}:iam::{a}:role/{name}", name="RoleName", limit=64),
    "AWS::KMS::Alias": TypeSpec("kms", "alias", "arn:{p}:kms:{r}:{a}:{name}", name="AliasName"),
    "AWS::KMS::Key": TypeSpec("kms", "key", "arn:{p}:kms:{r}:{a}:key/{name}", style="id"),
    "AWS::Lambda::Alias": TypeSpec("lambda", "function alias", "arn:{p}:lambda:{r}:{a}:function:{FunctionName}:{name}", name="Name", ref="arn"),
    "AWS::Lambda::Function": TypeSpec("lambda", "function", "arn:{p}:lambda:{r}:{a}:function:{name}", name="FunctionName", limit=64),
    "AWS::Lambda::Permission": TypeSpec("lambda", "function", "{FunctionArn}", style="id"),
    "AWS::Lambda::Version": TypeSpec("lambda", "function version", "arn:{p}:lambda:{r}:{a}:function:{FunctionName}:{name}", style="id", ref="arn"),
    "AWS::Logs::LogGroup": TypeSpec("logs", "log-group", "arn:{p}:logs:{r}:{a}:log-group:{name}", name="LogGroupName", limit=512),
    "AWS::S3::Bucket": TypeSpec("s3", "bucket", "arn:{p}:s3:::{name}", name="BucketName", limit=63, lower=True),
    "AWS::S3::BucketPolicy": TypeSpec("s3", "bucket", "arn:{p}:s3:::{Bucket}", style="id"),
    "AWS::SNS::Subscription": TypeSpec("sns", "topic", "{TopicArn}", style="id", ref="arn"),
    "AWS::SNS::Topic": TypeSpec("sns", "topic", "arn:{p}:sns:{r}:{a}:{name}", name="TopicName", ref="arn"),
    "AWS::SNS::TopicPolicy": TypeSpec("sns", "topic", "{Topics}", style="id"),
    "AWS::SageMaker::DataQualityJobDefinition": _sm("data-quality-job-definition", "JobDefinitionName"),
    "AWS::SageMaker::Endpoint": _sm("endpoint", "EndpointName"),
    "AWS::SageMaker::EndpointConfig": _sm("endpoint-config", "EndpointConfigName"),
    "AWS::SageMaker::Model": _sm("model", "ModelName"),
    "AWS::SageMaker::ModelPackageGroup": _sm("model-package-group", "ModelPackageGroupName"),
    "AWS::SageMaker::MonitoringSchedule": _sm("monitoring-schedule", "MonitoringScheduleName"),
    "AWS::Scheduler::Schedule": TypeSpec("scheduler", "schedule", "arn:{p}:scheduler:{r}:{a}:schedule/default/{name}", name="Name", limit=64),
    "AWS::ServiceCatalog::CloudFormationProduct": TypeSpec("servicecatalog", "Product", "arn:{p}:catalog:{r}:{a}:product/{name}", style="id"),
    "AWS::ServiceCatalog::LaunchRoleConstraint": TypeSpec(None, None, None, style="id"),
    "AWS::ServiceCatalog::Portfolio": TypeSpec("servicecatalog", "Portfolio", "arn:{p}:catalog:{r}:{a}:portfolio/{name}", style="id"),
    "AWS::ServiceCatalog::PortfolioPrincipalAssociation": TypeSpec(None, None, None, style="id"),
    "AWS::ServiceCatalog::PortfolioProductAssociation": TypeSpec(None, None, None, style="id"),
    "AWS::StepFunctions::StateMachine": TypeSpec("states", "statemachine", "arn:{p}:states:{r}:{a}:stateMachine:{name}", name="StateMachineName", limit=80, ref="arn"),
}

#: Attributes computed beside ``Arn``/names, per type: attribute -> template.
ATTRIBUTES: dict[str, dict[str, str]] = {
    "AWS::ECR::Repository": {"RepositoryUri": "{a}.dkr.ecr.{r}.amazonaws.com/{name}"},
    "AWS::S3::Bucket": {"DomainName": "{name}.s3.amazonaws.com", "RegionalDomainName": "{name}.s3.{r}.amazonaws.com"},
    "AWS::SNS::Topic": {"TopicName": "{name}"},
    "AWS::StepFunctions::StateMachine": {"Name": "{name}"},
    "AWS::Lambda::Version": {"Version": "{name}"},
    "AWS::Logs::LogGroup": {"Arn": "arn:{p}:logs:{r}:{a}:log-group:{name}:*"},
    "AWS::SageMaker::ModelPackageGroup": {"ModelPackageGroupArn": "{arn}"},
    "AWS::SageMaker::Endpoint": {"EndpointName": "{name}"},
    "AWS::SageMaker::EndpointConfig": {"EndpointConfigName": "{name}"},
    "AWS::SageMaker::Model": {"ModelName": "{name}"},
    "AWS::SageMaker::DataQualityJobDefinition": {"JobDefinitionName": "{name}", "JobDefinitionArn": "{arn}"},
    "AWS::SageMaker::MonitoringSchedule": {"MonitoringScheduleArn": "{arn}"},
    "AWS::IAM::Role": {"RoleId": "AROA{hash}"},
    "AWS::KMS::Key": {"KeyId": "{name}"},
    "AWS::EC2::SecurityGroup": {"GroupId": "{name}"},
    "AWS::EC2::VPC": {"VpcId": "{name}"},
    "AWS::ServiceCatalog::CloudFormationProduct": {"ProvisioningArtifactIds": "pa-{hash}", "ProductName": "product"},
    "AWS::ApiGateway::RestApi": {"RootResourceId": "{hash}"},
    "AWS::CodePipeline::Pipeline": {"Version": "1"},
}

PSEUDO = ("AWS::AccountId", "AWS::Region", "AWS::Partition", "AWS::StackName", "AWS::StackId",
          "AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs")
_NO_VALUE = object()


def _suffix(seed: str, length: int, upper: bool = True) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    text = "".join(c for c in digest if c.isalnum())[:length]
    return text.upper() if upper else text


def generated_name(stack: str, logical_id: str, spec: TypeSpec) -> str:
    """The physical name CloudFormation generates when the template sets none."""
    if spec.style == "id":
        digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()
        return spec.id_prefix + digest[:17 if spec.id_prefix else 12]
    suffix = _suffix(f"{stack}/{logical_id}", 12)
    if spec.style == "logical":
        name = f"{logical_id}-{suffix}"
    else:
        # CloudFormation shortens the stack and logical-id parts to fit the limit.
        budget = spec.limit - len(suffix) - 2
        stack_part, logical_part = stack, logical_id
        while len(stack_part) + 1 + len(logical_part) > budget:
            if len(stack_part) >= len(logical_part):
                stack_part = stack_part[:-1]
            else:
                logical_part = logical_part[:-1]
        name = f"{stack_part}-{logical_part}-{suffix}"
    return name[: spec.limit]


@dataclass
class DeployedResource:
    logical_id: str
    kind: str
    properties: dict[str, Any]  # resolved
    name: str  # physical name or ID (what Ref gives for name-style types)
    arn: str | None
    tags: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    update_policy: dict[str, Any] | None = None

    @property
    def spec(self) -> TypeSpec | None:
        kind = "AWS::CloudFormation::CustomResource" if self.kind.startswith("Custom::") else self.kind
        return TYPES.get(kind)


class DeployedStack:
    """``template`` deployed as ``name`` with ``parameters``."""

    def __init__(
        self,
        name: str,
        template: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        env: Environment | None = None,
        stack_tags: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.template = template
        self.env = env or Environment()
        self.stack_tags = dict(stack_tags or {})
        self.parameters: dict[str, Any] = {}
        for key, spec in template.get("Parameters", {}).items():
            given = (parameters or {}).get(key)
            if given is None and "Default" not in spec:
                raise KeyError(f"stack {name}: parameter {key} has no value")
            value = given if given is not None else spec["Default"]
            kind = str(spec.get("Type"))
            if kind.startswith("List<") or kind == "CommaDelimitedList":
                value = value if isinstance(value, list) else str(value).split(",")
            self.parameters[key] = value
        self.stack_id = (
            f"arn:{self.env.partition}:cloudformation:{self.env.region}:{self.env.account}:"
            f"stack/{name}/{_suffix(name, 8, False)}-0000-4000-8000-{_suffix(name + 'id', 12, False)}"
        )
        self._conditions: dict[str, bool] = {}
        self.resources: dict[str, DeployedResource] = {}
        self._names: dict[str, str] = {}
        self._build()

    # -- intrinsic functions ------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def _pseudo(self, name: str) -> Any:
        env = self.env
        return {
            "AWS::AccountId": env.account,
            "AWS::Region": env.region,
            "AWS::Partition": env.partition,
            "AWS::StackName": self.name,
            "AWS::StackId": self.stack_id,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
            "AWS::NotificationARNs": [],
        }[name]

    def ref(self, name: str) -> Any:
        if name in PSEUDO:
            return self._pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            resource = self.resources[name]
            spec = resource.spec
            if spec is not None and spec.ref == "arn" and resource.arn:
                return resource.arn
            return resource.name
        if name in self._names:  # during construction
            return self._names[name]
        if "." in name:  # SAM's <Function>.Version / <Api>.Stage references
            return self.get_att(*name.split(".", 1))
        raise KeyError(f"stack {self.name}: Ref to unknown {name}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            return UnresolvedValue(f"<{logical_id}.{attribute}>")
        if attribute in resource.attributes:
            return resource.attributes[attribute]
        if attribute == "Arn" and resource.arn:
            return resource.arn
        return UnresolvedValue(f"<{logical_id}.{attribute}>")

    def _sub(self, text: str, local: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            # ${Resource.Attribute} goes through ref() too, which reads dotted names as
            # attributes.
            value = local[key] if key in local else self.ref(key)
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::GetAtt":
                logical, attribute = value if isinstance(value, list) else value.split(".", 1)
                return self.get_att(logical, self.resolve(attribute))
            if key == "Fn::Sub":
                if isinstance(value, str):
                    return self._sub(value, {})
                local = {k: self.resolve(v) for k, v in value[1].items()}
                return self._sub(value[0], local)
            if key == "Fn::Join":
                delimiter, items = value
                return delimiter.join(str(i) for i in self.resolve(items))
            if key == "Fn::Select":
                index, items = self.resolve(value)
                return items[int(index)]
            if key == "Fn::Split":
                delimiter, text = value
                return str(self.resolve(text)).split(delimiter)
            if key == "Fn::If":
                name, yes, no = value
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                a, b = self.resolve(value)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in value)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in value)
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::FindInMap":
                mapping, top, second = self.resolve(value)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::GetAZs":
                return [f"{self.env.region}{zone}" for zone in "abc"]
            if key == "Fn::Base64":
                return self.resolve(value)
            if key == "Fn::ToJsonString":
                import json

                return json.dumps(self.resolve(value))
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    # -- resources -----------------------------------------------------------------------

    def _active(self, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.condition(condition)

    def _build(self) -> None:
        declared = {
            logical: resource
            for logical, resource in self.template["Resources"].items()
            if self._active(resource)
        }
        # Names first (a name may refer to another resource's name), pass after pass while
        # one more can be named; a name that never resolves is generated.
        pending = dict(declared)
        while pending:
            before = len(pending)
            for logical, resource in list(pending.items()):
                try:
                    self._names[logical] = self._physical_name(logical, resource)
                except KeyError:
                    continue
                del pending[logical]
            if len(pending) == before:
                break
        for logical, resource in pending.items():
            self._names[logical] = self._generated_name(logical, resource["Type"])
        # Then properties, ARNs and attributes, which may need other resources' ARNs (a
        # chain of them settles one link per pass): pass after pass until nothing changes.
        while True:
            before = dict(self.resources)
            for logical, resource in declared.items():
                self.resources[logical] = self._deploy(logical, resource)
            if self.resources == before:
                break

    def _physical_name(self, logical: str, resource: Mapping[str, Any]) -> str:
        kind = resource["Type"]
        spec = TYPES.get(kind)
        props = resource.get("Properties", {})
        if spec is not None and spec.name and spec.name in props:
            value = self.resolve(props[spec.name])
            return str(value).lower() if spec.lower else str(value)
        return self._generated_name(logical, kind)

    def _generated_name(self, logical: str, kind: str) -> str:
        spec = TYPES.get(kind) or TypeSpec(None, None, None)
        name = generated_name(self.name, logical, spec)
        return name.lower() if spec.lower else name

    def _deploy(self, logical: str, resource: Mapping[str, Any]) -> DeployedResource:
        kind = resource["Type"]
        spec = TYPES.get("AWS::CloudFormation::CustomResource" if kind.startswith("Custom::") else kind)
        name = self._names[logical]
        try:
            props = self.resolve(resource.get("Properties", {}))
        except KeyError:
            props = {}
        arn = None
        fields = {"p": self.env.partition, "r": self.env.region, "a": self.env.account, "name": name}
        fields.update({k: v for k, v in props.items() if isinstance(v, str)})
        if kind == "AWS::SNS::TopicPolicy":
            fields["Topics"] = (props.get("Topics") or [""])[0]
        # Without its (required) FunctionName, a permission's, version's or alias's ARN is
        # unknown: the format below misses the field and gives an UnresolvedValue.
        if kind == "AWS::Lambda::Permission" and "FunctionName" in props:
            fields["FunctionArn"] = self._function_arn(props["FunctionName"])
        if kind in ("AWS::Lambda::Version", "AWS::Lambda::Alias"):
            if "FunctionName" in props:
                fields["FunctionName"] = self._function_name(props["FunctionName"])
            if kind == "AWS::Lambda::Version":
                fields["name"] = name = str(1 + sum(
                    1 for other, r in self.template["Resources"].items()
                    if r["Type"] == kind and other < logical
                ))
        if spec is not None and spec.arn:
            try:
                arn = spec.arn.format(**fields)
            except (KeyError, IndexError):
                arn = UnresolvedValue(f"<{logical}.Arn>")
        tags = self._tags(props.get("Tags"))
        attributes: dict[str, Any] = {}
        hashed = _suffix(f"{self.name}/{logical}/attr", 10, False)
        for attribute, template in ATTRIBUTES.get(kind, {}).items():
            attributes[attribute] = template.format(**fields, arn=arn, hash=hashed)
        depends = resource.get("DependsOn", [])
        try:
            update_policy = self.resolve(resource.get("UpdatePolicy"))  # None stays None
        except KeyError:
            update_policy = None
        return DeployedResource(
            logical, kind, props, name, arn, tags, attributes,
            tuple([depends] if isinstance(depends, str) else depends), update_policy,
        )

    def _function_name(self, value: str) -> str:
        # A name, a partial ARN or an ARN, with or without a qualifier (names hold no ":").
        return str(value).split(":function:")[-1].split(":")[0]

    def _function_arn(self, value: str) -> str:
        value = str(value)
        if value.startswith("arn:"):
            return value
        env = self.env
        return f"arn:{env.partition}:lambda:{env.region}:{env.account}:function:{value}"

    def _tags(self, tags: Any) -> dict[str, str]:
        found = dict(self.stack_tags)
        if isinstance(tags, list):
            found.update({str(t["Key"]): str(t["Value"]) for t in tags if isinstance(t, dict) and "Key" in t})
        elif isinstance(tags, dict):
            found.update({str(k): str(v) for k, v in tags.items()})
        return found

    # -- queries -------------------------------------------------------------------------

    def of_type(self, kind: str) -> dict[str, DeployedResource]:
        return {k: r for k, r in self.resources.items() if r.kind == kind}

    def output(self, name: str) -> Any:
        return self.resolve(self.template["Outputs"][name]["Value"])
