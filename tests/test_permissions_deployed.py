"""The deploy-time model of a stack (mlops_templates.permissions.deployed) on small templates
written here: what CloudFormation would make of them (parameters, pseudo parameters,
conditions, every intrinsic function, physical names, ARNs, tags and attributes). The
permission checks evaluate the roles' policies against these values, so a wrong name or
ARN here would make a check pass or fail for the wrong reason.

Expected values are written out; the generated names' suffixes are recomputed here from
their definition (the first hex digits of a SHA-256 of "<stack>/<LogicalId>").
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from mlops_templates.permissions.deployed import (
    ATTRIBUTES,
    TYPES,
    DeployedStack,
    Environment,
    TypeSpec,
    UnresolvedValue,
    generated_name,
)

STACK = "proj-dev"
ACCOUNT = "111122223333"


def sha(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def deploy(resources: dict[str, Any] | None = None, *, parameter_values: dict[str, Any] | None = None,
           env: Environment | None = None, stack_tags: dict[str, str] | None = None,
           **sections: Any) -> DeployedStack:
    """``resources`` and the template's other ``sections`` deployed as STACK."""
    return DeployedStack(STACK, {"Resources": resources or {}, **sections}, parameter_values, env, stack_tags)


def value(node: Any, **sections: Any) -> Any:
    """``node`` resolved in a stack whose one resource holds it as a property."""
    resources = sections.pop("resources", {})
    stack = deploy({**resources, "Probe": {"Type": "AWS::SNS::Topic", "Properties": {"Probe": node}}},
                   **sections)
    return stack.resources["Probe"].properties.get("Probe", "<absent>")


# -- parameters and pseudo parameters -----------------------------------------------------


def test_parameters_take_the_given_value_else_the_default_and_lists_are_split() -> None:
    stack = deploy(
        Parameters={
            "Given": {"Type": "String", "Default": "d"},
            "Defaulted": {"Type": "String", "Default": "d"},
            "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>"},
            "Names": {"Type": "CommaDelimitedList", "Default": "a,b"},
            "Kept": {"Type": "CommaDelimitedList"},
            "Untyped": {"Default": "x,y"},
        },
        parameter_values={"Given": "g", "Subnets": "subnet-1,subnet-2", "Kept": ["p", "q"]},
    )
    assert stack.parameters == {"Given": "g", "Defaulted": "d", "Subnets": ["subnet-1", "subnet-2"],
                                "Names": ["a", "b"], "Kept": ["p", "q"], "Untyped": "x,y"}


def test_a_parameter_without_value_or_default_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="stack proj-dev: parameter Bucket has no value"):
        deploy(Parameters={"Bucket": {"Type": "String"}}, parameter_values={"Other": "x"})
    with pytest.raises(KeyError, match="stack proj-dev: parameter Bucket has no value"):
        deploy(Parameters={"Bucket": {"Type": "String"}})


def test_an_empty_given_value_is_a_value() -> None:
    stack = deploy(Parameters={"Prefix": {"Type": "String", "Default": "d"}}, parameter_values={"Prefix": ""})
    assert stack.parameters == {"Prefix": ""}


def test_the_stack_id_is_a_cloudformation_stack_arn_fixed_per_name() -> None:
    stack = deploy()
    assert stack.stack_id == (
        f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/proj-dev/"
        f"{sha('proj-dev', 8)}-0000-4000-8000-{sha('proj-devid', 12)}"
    )
    other = DeployedStack("proj-prd", {"Resources": {}}, env=Environment("444455556666", "eu-west-1", "aws-cn"))
    assert other.stack_id.startswith("arn:aws-cn:cloudformation:eu-west-1:444455556666:stack/proj-prd/")


def test_pseudo_parameters_follow_the_environment() -> None:
    env = Environment(account="444455556666", region="cn-north-1", partition="aws-cn")
    stack = deploy(env=env)
    expected = {
        "AWS::AccountId": "444455556666", "AWS::Region": "cn-north-1", "AWS::Partition": "aws-cn",
        "AWS::StackName": "proj-dev", "AWS::StackId": stack.stack_id, "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }
    for name, want in expected.items():
        assert stack.resolve({"Ref": name}) == want, name
    assert Environment() == Environment(ACCOUNT, "us-east-1", "aws")


def test_no_value_removes_a_property_and_a_list_item() -> None:
    node = {"Keep": "k", "Drop": {"Ref": "AWS::NoValue"}, "List": ["a", {"Ref": "AWS::NoValue"}, "b"]}
    assert value(node) == {"Keep": "k", "List": ["a", "b"]}
    assert value({"Ref": "AWS::NoValue"}) == "<absent>"


# -- intrinsic functions --------------------------------------------------------------------


def test_ref_gives_a_parameter_an_arn_or_a_name_by_type() -> None:
    stack = deploy(
        {
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alerts"}},
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "data"}},
            "Key": {"Type": "AWS::KMS::Key"},
        },
        Parameters={"Stage": {"Type": "String", "Default": "dev"}},
    )
    assert stack.resolve({"Ref": "Stage"}) == "dev"
    assert stack.resolve({"Ref": "Topic"}) == f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    assert stack.resolve({"Ref": "Bucket"}) == "data"
    assert stack.resolve({"Ref": "Key"}) == sha("proj-dev/Key", 12)
    with pytest.raises(KeyError, match="stack proj-dev: Ref to unknown Nope"):
        stack.resolve({"Ref": "Nope"})


def test_a_sam_dotted_ref_reads_the_attribute() -> None:
    stack = deploy({"Machine": {"Type": "AWS::StepFunctions::StateMachine",
                                "Properties": {"StateMachineName": "train"}}})
    assert stack.resolve({"Ref": "Machine.Name"}) == "train"


def test_get_att_reads_computed_attributes_then_the_arn_else_an_unresolved_value() -> None:
    stack = deploy({"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "data"}},
                    "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "r"}}})
    assert stack.resolve({"Fn::GetAtt": ["Bucket", "RegionalDomainName"]}) == "data.s3.us-east-1.amazonaws.com"
    assert stack.resolve({"Fn::GetAtt": "Bucket.DomainName"}) == "data.s3.amazonaws.com"
    assert stack.resolve({"Fn::GetAtt": ["Bucket", "Arn"]}) == "arn:aws:s3:::data"
    # An attribute name given by an intrinsic is resolved first.
    assert stack.resolve({"Fn::GetAtt": ["Role", {"Fn::Join": ["", ["A", "rn"]]}]}) == f"arn:aws:iam::{ACCOUNT}:role/r"
    missing = stack.resolve({"Fn::GetAtt": ["Bucket", "WebsiteURL"]})
    assert isinstance(missing, UnresolvedValue) and missing == "<Bucket.WebsiteURL>"
    unknown = stack.resolve({"Fn::GetAtt": ["Nope", "Arn"]})
    assert isinstance(unknown, UnresolvedValue) and unknown == "<Nope.Arn>"


def test_sub_replaces_pseudo_parameters_references_attributes_locals_and_keeps_escapes() -> None:
    stack = deploy({"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "data"}}},
                   Parameters={"Stage": {"Type": "String", "Default": "dev"}})
    assert stack.resolve({"Fn::Sub": "${AWS::Region}/${Stage}/${Bucket}/${Bucket.Arn}/${!Literal}"}) == (
        "us-east-1/dev/data/arn:aws:s3:::data/${Literal}"
    )
    assert stack.resolve({"Fn::Sub": ["${Name}-${Stage}", {"Name": {"Ref": "Bucket"}, "Stage": "local"}]}) == (
        "data-local"
    )
    assert stack.resolve({"Fn::Sub": "${AWS::Region}.${AWS::URLSuffix}"}) == "us-east-1.amazonaws.com"
    # An attribute name may hold dots of its own (Endpoint.Address): only the first splits.
    assert stack.resolve({"Fn::Sub": "${Bucket.Endpoint.Address}"}) == "<Bucket.Endpoint.Address>"
    assert stack.resolve({"Fn::Sub": "${Gone.Arn}"}) == "<Gone.Arn>"


def test_a_dotted_reference_splits_at_its_first_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    # As RDS's Endpoint.Address: the attribute's name holds a dot.
    monkeypatch.setitem(ATTRIBUTES, "AWS::SNS::Topic", {"Endpoint.Address": "{name}.example"})
    stack = deploy({"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}})
    assert stack.resolve({"Ref": "Topic.Endpoint.Address"}) == "t.example"
    assert stack.resolve({"Fn::Sub": "${Topic.Endpoint.Address}"}) == "t.example"
    assert stack.resolve({"Fn::GetAtt": "Topic.Endpoint.Address"}) == "t.example"
    assert stack.resolve({"Fn::GetAtt": ["Topic", "Endpoint.Address"]}) == "t.example"
    with pytest.raises(KeyError, match="Ref to unknown Nope"):
        stack.resolve({"Fn::Sub": "${Nope}"})


def test_join_select_split_find_in_map_get_azs_base64_and_to_json_string() -> None:
    stack = deploy(Mappings={"Images": {"us-east-1": {"XGBoost": "img:1"}}},
                   Parameters={"Index": {"Type": "String", "Default": "1"}})
    assert stack.resolve({"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}, 3]]}) == "a-us-east-1-3"
    assert stack.resolve({"Fn::Join": ["", []]}) == ""
    assert stack.resolve({"Fn::Select": [{"Ref": "Index"}, ["x", "y", "z"]]}) == "y"
    assert stack.resolve({"Fn::Select": [0, {"Fn::Split": [",", "p,q"]}]}) == "p"
    assert stack.resolve({"Fn::Split": ["/", {"Fn::Join": ["/", ["a", "b", "c"]]}]}) == ["a", "b", "c"]
    assert stack.resolve({"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "XGBoost"]}) == "img:1"
    assert stack.resolve({"Fn::GetAZs": ""}) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert stack.resolve({"Fn::Base64": {"Ref": "AWS::Region"}}) == "us-east-1"
    assert json.loads(stack.resolve({"Fn::ToJsonString": {"Region": {"Ref": "AWS::Region"}, "N": [1]}})) == {
        "Region": "us-east-1", "N": [1]}


CONDITIONS = {
    "IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
    "IsPrd": {"Fn::Not": [{"Condition": "IsDev"}]},
    "Both": {"Fn::And": [{"Condition": "IsDev"}, {"Fn::Equals": ["a", "a"]}]},
    "DevAndPrd": {"Fn::And": [{"Condition": "IsDev"}, {"Condition": "IsPrd"}]},
    "Either": {"Fn::Or": [{"Condition": "IsPrd"}, {"Condition": "IsDev"}]},
    "Neither": {"Fn::Or": [{"Condition": "IsPrd"}, {"Fn::Equals": ["a", "b"]}]},
}


@pytest.mark.parametrize("stage, expected", [
    ("dev", {"IsDev": True, "IsPrd": False, "Both": True, "DevAndPrd": False, "Either": True, "Neither": False}),
    ("prd", {"IsDev": False, "IsPrd": True, "Both": False, "DevAndPrd": False, "Either": True, "Neither": True}),
])
def test_conditions_combine_equals_not_and_or(stage: str, expected: dict[str, bool]) -> None:
    stack = deploy(Conditions=CONDITIONS, Parameters={"Stage": {"Type": "String"}},
                   parameter_values={"Stage": stage})
    assert {name: stack.condition(name) for name in CONDITIONS} == expected
    assert stack.resolve({"Fn::If": ["IsDev", "d", "p"]}) == ("d" if stage == "dev" else "p")
    assert stack.resolve({"Fn::If": ["IsPrd", {"Ref": "Stage"}, {"Ref": "AWS::NoValue"}]}) == (
        "prd" if stage == "prd" else stack.resolve({"Ref": "AWS::NoValue"}))


def test_a_resource_whose_condition_is_false_is_not_deployed() -> None:
    stack = deploy(
        {"Always": {"Type": "AWS::SNS::Topic"},
         "DevOnly": {"Type": "AWS::SNS::Topic", "Condition": "IsDev"},
         "PrdOnly": {"Type": "AWS::SNS::Topic", "Condition": "IsPrd"}},
        Conditions=CONDITIONS, Parameters={"Stage": {"Type": "String", "Default": "dev"}},
    )
    assert set(stack.resources) == {"Always", "DevOnly"}


def test_a_plain_mapping_or_list_is_resolved_member_by_member() -> None:
    node = {"A": {"Ref": "AWS::Region"}, "B": [{"Ref": "AWS::AccountId"}, 2], "C": {"X": 1, "Y": "z"}}
    assert value(node) == {"A": "us-east-1", "B": [ACCOUNT, 2], "C": {"X": 1, "Y": "z"}}


# -- physical names -----------------------------------------------------------------------


def test_a_generated_stack_style_name_is_stack_logical_id_and_an_upper_case_suffix() -> None:
    spec = TYPES["AWS::SNS::Topic"]
    assert generated_name(STACK, "Alerts", spec) == f"proj-dev-Alerts-{sha('proj-dev/Alerts', 12).upper()}"


def test_a_long_generated_name_shortens_the_longer_part_first_to_fit_the_limit() -> None:
    spec = TYPES["AWS::IAM::Role"]  # 64 characters
    stack, logical = "s" * 40, "L" * 30
    name = generated_name(stack, logical, spec)
    # 64 - 12 (suffix) - 2 (hyphens) = 50 for both parts and the hyphen between them.
    assert name == "s" * 24 + "-" + "L" * 25 + "-" + sha(f"{stack}/{logical}", 12).upper()
    assert len(name) == 63
    assert generated_name("s" * 10, "L" * 60, spec) == "s" * 10 + "-" + "L" * 39 + "-" + sha(
        "s" * 10 + "/" + "L" * 60, 12).upper()
    # Exactly at the budget, nothing is cut.
    # One character at a time: a stack part one longer than the logical id's ends one shorter.
    assert generated_name("s" * 41, logical, spec).startswith("s" * 24 + "-" + "L" * 25 + "-")
    fits = generated_name("s" * 25, "L" * 24, spec)
    assert fits.startswith("s" * 25 + "-" + "L" * 24 + "-") and len(fits) == 63


def test_sagemaker_names_are_the_logical_id_and_a_suffix_in_lower_case_up_to_63() -> None:
    # CloudFormation names a SageMaker resource after its logical id alone, not the stack
    # (aws/aws-cli#4021); SageMaker names are at most 63 characters (the API reference's
    # EndpointName/ModelName constraints).
    stack = deploy({"Model": {"Type": "AWS::SageMaker::Model"},
                    "Config": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {"EndpointConfigName": "Cfg-A"}},
                    "L" * 60: {"Type": "AWS::SageMaker::Endpoint"}})
    suffix = sha("proj-dev/Model", 12)
    model = stack.resources["Model"]
    assert model.name == f"model-{suffix}"
    assert model.arn == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/model-{suffix}"
    assert stack.resolve({"Ref": "Model"}) == model.arn
    assert stack.resolve({"Fn::GetAtt": ["Model", "ModelName"]}) == f"model-{suffix}"
    assert stack.resources["Config"].name == "cfg-a"
    assert stack.resources["Config"].arn.endswith(":endpoint-config/cfg-a")
    assert stack.resources["L" * 60].name == ("l" * 60 + "-" + sha("proj-dev/" + "L" * 60, 12))[:63]
    spec = TYPES["AWS::SageMaker::Endpoint"]
    assert (spec.style, spec.limit, spec.lower, spec.ref) == ("logical", 63, True, "arn")


def test_an_id_style_name_is_a_prefixed_17_digit_or_a_plain_12_digit_id() -> None:
    digest = sha("proj-dev/Group", 17)
    assert generated_name(STACK, "Group", TYPES["AWS::EC2::SecurityGroup"]) == f"sg-{digest}"
    assert generated_name(STACK, "Key", TYPES["AWS::KMS::Key"]) == sha("proj-dev/Key", 12)


def test_a_name_property_is_used_as_given_or_in_lower_case_for_lower_case_types() -> None:
    stack = deploy({"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "My-Data"}},
                    "Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "My-Role"}},
                    "Repo": {"Type": "AWS::ECR::Repository"}})
    assert stack.resources["Bucket"].name == "my-data"
    assert stack.resources["Role"].name == "My-Role"
    assert stack.resources["Repo"].name == f"proj-dev-Repo-{sha('proj-dev/Repo', 12).upper()}".lower()


def test_a_name_built_from_another_resources_name_waits_for_it() -> None:
    # Declared first, the role's name needs the bucket's, which needs the parameter.
    stack = deploy(
        {"Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": {"Fn::Sub": "${Bucket}-role"}}},
         "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": {"Fn::Sub": "${Prefix}-data"}}}},
        Parameters={"Prefix": {"Type": "String", "Default": "p"}},
    )
    assert stack.resources["Role"].name == "p-data-role"
    assert stack.resources["Role"].arn == f"arn:aws:iam::{ACCOUNT}:role/p-data-role"


def test_a_name_that_cannot_be_resolved_is_generated() -> None:
    stack = deploy({"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Ref": "Nope"}}},
                    "Thing": {"Type": "AWS::Unknown::Thing", "Properties": {"Name": {"Ref": "Nope"}}}})
    assert stack.resources["Topic"].name == f"proj-dev-Topic-{sha('proj-dev/Topic', 12).upper()}"
    assert stack.resources["Thing"].name == f"proj-dev-Thing-{sha('proj-dev/Thing', 12).upper()}"
    assert stack.resources["Topic"].properties == {}  # its properties need the unknown name too


# -- ARNs, attributes, tags -----------------------------------------------------------------


def test_arns_follow_each_types_format() -> None:
    env = Environment("444455556666", "eu-west-1", "aws")
    stack = deploy(
        {
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/x/y"}},
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f"}},
            "Machine": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"StateMachineName": "m"}},
            "App": {"Type": "AWS::CodeDeploy::Application", "Properties": {"ApplicationName": "app"}},
            "Group": {"Type": "AWS::CodeDeploy::DeploymentGroup",
                      "Properties": {"ApplicationName": {"Ref": "App"}, "DeploymentGroupName": "g"}},
            "Board": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {"DashboardName": "d"}},
            "Api": {"Type": "AWS::ApiGateway::RestApi"},
            "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "v1"}},
        },
        env=env,
    )
    arns = {logical: resource.arn for logical, resource in stack.resources.items()}
    api = sha("proj-dev/Api", 12)
    assert arns == {
        "Logs": "arn:aws:logs:eu-west-1:444455556666:log-group:/x/y",
        "Fn": "arn:aws:lambda:eu-west-1:444455556666:function:f",
        "Machine": "arn:aws:states:eu-west-1:444455556666:stateMachine:m",
        "App": "arn:aws:codedeploy:eu-west-1:444455556666:application:app",
        "Group": "arn:aws:codedeploy:eu-west-1:444455556666:deploymentgroup:app/g",
        "Board": "arn:aws:cloudwatch::444455556666:dashboard/d",
        "Api": f"arn:aws:apigateway:eu-west-1::/restapis/{api}",
        "Stage": f"arn:aws:apigateway:eu-west-1::/restapis/{api}/stages/v1",
    }
    assert stack.resolve({"Fn::GetAtt": ["Logs", "Arn"]}) == "arn:aws:logs:eu-west-1:444455556666:log-group:/x/y:*"


def test_an_arn_that_needs_a_missing_property_is_an_unresolved_value() -> None:
    stack = deploy({"Group": {"Type": "AWS::CodeDeploy::DeploymentGroup", "Properties": {"DeploymentGroupName": "g"}}})
    arn = stack.resources["Group"].arn
    assert isinstance(arn, UnresolvedValue) and arn == "<Group.Arn>"
    assert deploy({"Assoc": {"Type": "AWS::EC2::SubnetRouteTableAssociation"}}).resources["Assoc"].arn is None


def test_lambda_versions_are_numbered_in_logical_id_order_and_aliases_name_the_function() -> None:
    fn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f"
    stack = deploy({
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "f"}},
        "VersionB": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
        "VersionA": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": fn}},
        "VersionC": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": fn + ":3"}},
        "VersionD": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": f"{ACCOUNT}:function:g"}},
        "Live": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Fn::GetAtt": ["Fn", "Arn"]}, "Name": "live"}},
        "Invoke": {"Type": "AWS::Lambda::Permission", "Properties": {"FunctionName": "f"}},
        "InvokeArn": {"Type": "AWS::Lambda::Permission", "Properties": {"FunctionName": fn + ":live"}},
    })
    assert stack.resources["VersionA"].arn == fn + ":1"
    assert stack.resources["VersionB"].arn == fn + ":2"
    # A qualified ARN and a partial ARN name their function.
    assert stack.resources["VersionC"].arn == fn + ":3"
    assert stack.resources["VersionD"].arn == f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:g:4"
    assert stack.resolve({"Fn::GetAtt": ["VersionB", "Version"]}) == "2"
    assert stack.resolve({"Ref": "VersionA"}) == fn + ":1"
    assert stack.resources["Live"].arn == fn + ":live"
    assert stack.resources["Invoke"].arn == fn
    assert stack.resources["InvokeArn"].arn == fn + ":live"


def test_policies_and_subscriptions_take_the_arn_of_what_they_attach_to() -> None:
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:t"
    stack = deploy({
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}},
        "Policy": {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": [{"Ref": "Topic"}, "other"]}},
        "Empty": {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": []}},
        "Sub": {"Type": "AWS::SNS::Subscription", "Properties": {"TopicArn": {"Ref": "Topic"}}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "b"}},
        "BucketPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Bucket"}}},
        "Custom": {"Type": "Custom::Settings", "Properties": {"ServiceToken": "arn:aws:lambda:us-east-1:1:function:s"}},
    })
    assert stack.resources["Policy"].arn == topic
    assert stack.resources["Empty"].arn == ""
    assert stack.resources["Sub"].arn == topic
    assert stack.resources["BucketPolicy"].arn == "arn:aws:s3:::b"
    custom = stack.resources["Custom"]
    assert custom.arn == "arn:aws:lambda:us-east-1:1:function:s"
    assert custom.spec == TYPES["AWS::CloudFormation::CustomResource"]
    assert DeployedStack(STACK, {"Resources": {"X": {"Type": "AWS::Unknown::X"}}}).resources["X"].spec is None


@pytest.mark.parametrize("kind, attributes", [
    ("AWS::ECR::Repository", {"RepositoryUri": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{{name}}"}),
    ("AWS::SNS::Topic", {"TopicName": "{name}"}),
    ("AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupArn": "{arn}"}),
    ("AWS::SageMaker::DataQualityJobDefinition", {"JobDefinitionName": "{name}", "JobDefinitionArn": "{arn}"}),
    ("AWS::EC2::VPC", {"VpcId": "{name}"}),
    ("AWS::CodePipeline::Pipeline", {"Version": "1"}),
])
def test_computed_attributes_follow_the_name_and_arn(kind: str, attributes: dict[str, str]) -> None:
    resource = deploy({"It": {"Type": kind}}).resources["It"]
    assert resource.attributes == {
        key: text.format(name=resource.name, arn=resource.arn) for key, text in attributes.items()}


def test_hashed_attributes_are_fixed_per_stack_and_resource() -> None:
    stack = deploy({"Role": {"Type": "AWS::IAM::Role", "Properties": {"RoleName": "r"}},
                    "Api": {"Type": "AWS::ApiGateway::RestApi"}})
    assert stack.resolve({"Fn::GetAtt": ["Role", "RoleId"]}) == "AROA" + sha("proj-dev/Role/attr", 10)
    assert stack.resolve({"Fn::GetAtt": ["Api", "RootResourceId"]}) == sha("proj-dev/Api/attr", 10)


def test_tags_are_the_stacks_then_the_resources_own_in_either_form() -> None:
    stack = deploy(
        {"Listed": {"Type": "AWS::SNS::Topic", "Properties": {"Tags": [
            {"Key": "team", "Value": "ml"}, {"Key": "project", "Value": "own"}, "not-a-tag", {"Value": "no key"}]}},
         "Mapped": {"Type": "AWS::SNS::Topic", "Properties": {"Tags": {"team": {"Ref": "AWS::Region"}}}},
         "Bare": {"Type": "AWS::SNS::Topic"}},
        stack_tags={"project": "proj"},
    )
    assert stack.resources["Listed"].tags == {"project": "own", "team": "ml"}
    assert stack.resources["Mapped"].tags == {"project": "proj", "team": "us-east-1"}
    assert stack.resources["Bare"].tags == {"project": "proj"}


def test_depends_on_and_update_policy_are_kept() -> None:
    stack = deploy({
        "A": {"Type": "AWS::SNS::Topic"},
        "B": {"Type": "AWS::SNS::Topic", "DependsOn": "Topic"},
        "C": {"Type": "AWS::SNS::Topic", "DependsOn": ["A", "B"],
              "UpdatePolicy": {"Region": {"Ref": "AWS::Region"}}},
        "D": {"Type": "AWS::SNS::Topic", "UpdatePolicy": {"X": {"Ref": "Nope"}}},
        "Topic": {"Type": "AWS::SNS::Topic"},
    })
    assert [stack.resources[k].depends_on for k in "ABC"] == [(), ("Topic",), ("A", "B")]
    assert stack.resources["C"].update_policy == {"Region": "us-east-1"}
    assert stack.resources["A"].update_policy is None
    assert stack.resources["D"].update_policy is None


def test_resources_of_a_type_and_outputs() -> None:
    stack = deploy(
        {"T1": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "one"}},
         "T2": {"Type": "AWS::SNS::Topic"}, "B": {"Type": "AWS::S3::Bucket"}},
        Outputs={"TopicArn": {"Value": {"Ref": "T1"}}},
    )
    assert set(stack.of_type("AWS::SNS::Topic")) == {"T1", "T2"}
    assert stack.of_type("AWS::IAM::Role") == {}
    assert stack.output("TopicArn") == f"arn:aws:sns:us-east-1:{ACCOUNT}:one"


def test_a_type_spec_defaults_to_a_generated_stack_style_name_of_up_to_255() -> None:
    assert TypeSpec(None, None, None) == TypeSpec(None, None, None, None, "stack", 255, "name", False, "")


def test_values_that_need_another_resources_arn_settle_in_three_passes() -> None:
    # Declared in this order, A reads B's ARN, which is C's ARN: the first pass sees neither
    # (names only), the second gets B's right but A reads B's first-pass value, the third
    # gets A right.
    stack = deploy({
        "A": {"Type": "AWS::SNS::Topic", "Properties": {"Reads": {"Ref": "B"}}},
        "B": {"Type": "AWS::SNS::Subscription", "Properties": {"TopicArn": {"Ref": "C"}}},
        "C": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "c"}},
    })
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:c"
    assert stack.resources["B"].arn == topic
    assert stack.resources["A"].properties == {"Reads": topic}


@pytest.mark.parametrize("kind", ["AWS::Lambda::Permission", "AWS::Lambda::Version", "AWS::Lambda::Alias"])
def test_a_lambda_child_whose_function_is_unknown_has_an_unresolved_arn(kind: str) -> None:
    # Its properties need an unknown Ref, so none are known, the function's name included.
    stack = deploy({"It": {"Type": kind, "Properties": {"FunctionName": {"Ref": "Nope"}, "Name": "live"}}})
    arn = stack.resources["It"].arn
    assert isinstance(arn, UnresolvedValue) and arn == "<It.Arn>"


def test_a_longer_chain_of_arns_settles_too() -> None:
    # One link more than the three-pass case: passes go on until nothing changes.
    stack = deploy({
        "A": {"Type": "AWS::SNS::Topic", "Properties": {"Reads": {"Ref": "B"}}},
        "B": {"Type": "AWS::SNS::Subscription", "Properties": {"TopicArn": {"Ref": "C"}}},
        "C": {"Type": "AWS::SNS::Subscription", "Properties": {"TopicArn": {"Ref": "D"}}},
        "D": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "d"}},
    })
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:d"
    assert [stack.resources[k].arn for k in "BCD"] == [topic] * 3
    assert stack.resources["A"].properties == {"Reads": topic}


def test_a_name_that_never_resolves_is_generated_in_its_types_shape() -> None:
    stack = DeployedStack("s" * 40, {"Resources": {
        "Model": {"Type": "AWS::SageMaker::Model", "Properties": {"ModelName": {"Ref": "Nope"}}},
        "L" * 30: {"Type": "AWS::IAM::Role", "Properties": {"RoleName": {"Ref": "Nope"}}},
    }})
    assert stack.resources["Model"].name == "model-" + sha("s" * 40 + "/Model", 12)
    assert stack.resources["L" * 30].name == "s" * 24 + "-" + "L" * 25 + "-" + sha(
        "s" * 40 + "/" + "L" * 30, 12).upper()
