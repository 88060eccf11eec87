"""Small parts of the deploy-time permission check on their own: the gap report a failing
check prints, the request context of a tagging call, a role's documents, and the lookups
of a modelled deployment."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from mlops_templates import config
from mlops_templates.permissions import coverage, data, scenario
from mlops_templates.permissions.deployed import DeployedStack
from mlops_templates.permissions.policy import Request, allows, decide, wildcard_match


def gap(action: str = "s3:PutObject", **fields: Any) -> coverage.Gap:
    values = {"stack": "mlops-abalone-pipeline", "logical_id": "Bucket", "kind": "AWS::S3::Bucket",
              "operation": "create", "action": action, "resource": "arn:aws:s3:::b",
              "decision": "ImplicitDeny", **fields}
    return coverage.Gap(**values)


def test_a_gap_reads_as_type_operation_action_resource_decision_and_where() -> None:
    assert str(gap()) == (
        "AWS::S3::Bucket create: s3:PutObject on arn:aws:s3:::b "
        "(ImplicitDeny; mlops-abalone-pipeline/Bucket)"
    )
    tagged = gap(context=(("aws:RequestTag/team", "ml"), ("aws:TagKeys", "['team']")))
    assert str(tagged) == (
        "AWS::S3::Bucket create: s3:PutObject on arn:aws:s3:::b (ImplicitDeny; "
        "mlops-abalone-pipeline/Bucket; aws:RequestTag/team=ml, aws:TagKeys=['team'])"
    )


def test_a_report_lists_each_type_operation_and_action_once() -> None:
    first, again, other = gap(), gap(logical_id="Other", resource="arn:aws:s3:::c"), gap("s3:GetObject")
    assert coverage.dedupe([first, again, other]) == [first, other]
    assert coverage.format_gaps([first, again, other]) == f"{first}\n{other}"
    assert coverage.format_gaps([]) == ""


POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}


def test_a_roles_documents_are_its_inline_policies_and_the_managed_ones_naming_it() -> None:
    managed = {"ManagedPolicyName": "m", "PolicyDocument": {**POLICY, "Sid": "managed"}}
    stack = DeployedStack("s", {"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "r", "AssumeRolePolicyDocument": {}, "Policies": [
                {"PolicyName": "inline", "PolicyDocument": POLICY}]}},
        "Attached": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {**managed, "Roles": ["r"]}},
        "Elsewhere": {"Type": "AWS::IAM::ManagedPolicy", "Properties": {**managed, "Roles": ["x"]}},
        # Attached through a role's ManagedPolicyArns instead: names no role itself.
        "Unattached": {"Type": "AWS::IAM::ManagedPolicy", "Properties": managed},
    }})
    assert coverage.role_documents(stack, "Role") == [POLICY, {**POLICY, "Sid": "managed"}]


@pytest.fixture(scope="module")
def example() -> scenario.ProjectDeployment:
    return scenario.deploy(config.parse({}))


def test_a_tagging_create_call_carries_the_resources_tags(example: scenario.ProjectDeployment) -> None:
    """``Create*``, ``Put*`` and ``Register*`` calls send the resource's tags on create and
    update, where the action supports the keys (the Service Authorization Reference)."""
    prd = example.runs["deploy-prd"]
    alarm = next(r for r in prd.of_type("AWS::CloudWatch::Alarm").values() if r.tags)
    info = data.action("cloudwatch:PutMetricAlarm")
    assert info is not None
    context = coverage.request_context(info, alarm, "create", alarm.arn, "alarm")
    assert context == {
        **{f"aws:RequestTag/{key}": value for key, value in alarm.tags.items()},
        "aws:TagKeys": sorted(alarm.tags),
    }
    assert coverage.request_context(info, alarm, "read", alarm.arn, "alarm") == {}


def test_a_register_call_carries_the_tags_and_only_a_service_linked_role_names_its_service(
    example: scenario.ProjectDeployment,
) -> None:
    (target,) = example.runs["deploy-prd"].of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    register = data.action("application-autoscaling:RegisterScalableTarget")
    describe = data.action("application-autoscaling:DescribeScalableTargets")
    linked = data.action("iam:CreateServiceLinkedRole")
    assert register and describe and linked and target.tags
    assert coverage.request_context(register, target, "create", "*", None) == {
        **{f"aws:RequestTag/{key}": value for key, value in target.tags.items()},
        "aws:TagKeys": sorted(target.tags),
    }
    assert coverage.request_context(describe, target, "read", "*", None) == {}
    assert coverage.request_context(linked, target, "create", "*", "role")["iam:AWSServiceName"] == (
        "sagemaker.application-autoscaling.amazonaws.com")


def test_a_deployment_finds_its_stacks_and_pipeline_roles(example: scenario.ProjectDeployment) -> None:
    assert example.stack("pipeline") is example.pipeline
    assert example.stack("workflow") is example.runs["workflow"]
    with pytest.raises(KeyError) as info:
        example.stack("ci-oidc")
    assert info.value.args == ("no ci-oidc stack: pipeline.orchestrator is codepipeline",)
    documents = example.role_documents("StatesRole")
    assert documents and documents == coverage.role_documents(example.pipeline, "StatesRole")


@pytest.mark.parametrize("action", ["kms:ScheduleKeyDeletion", "kms:EnableKey", "kms:UntagResource",
                                    "kms:UpdateKeyDescription"])
def test_the_launch_role_changes_an_existing_key_only_under_the_projects_tag(
        example: scenario.ProjectDeployment, action: str) -> None:
    """Key IDs are generated, so the launch role's key ARN is ``key/*``: what it may do to a
    key after creating it (schedule its deletion, ...) holds only for keys tagged as one
    of the organisation's projects (``mlops:project`` = ``mlops-*``), never another key of
    the account."""
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    documents = example.launch_role_documents()
    tag = "aws:ResourceTag/mlops:project"
    assert allows(documents, Request(action, key, {tag: "mlops-churn"}))
    assert not allows(documents, Request(action, key, {tag: "finance-ledger"}))
    assert not allows(documents, Request(action, key))


@pytest.mark.parametrize(("action", "resource", "key", "service"), [
    ("codestar-connections:PassConnection",
     "arn:aws:codestar-connections:us-east-1:111122223333:connection/abc",
     "codestar-connections:PassedToService", "codepipeline.amazonaws.com"),
    ("codeconnections:PassConnection", "arn:aws:codeconnections:us-east-1:111122223333:connection/abc",
     "codeconnections:PassedToService", "codepipeline.amazonaws.com"),
    ("iam:PassRole", "arn:aws:iam::111122223333:role/mlops-churn-codebuild",
     "iam:PassedToService", "codebuild.amazonaws.com"),
])
def test_the_launch_role_hands_roles_and_connections_only_to_the_pipelines_services(
        example: scenario.ProjectDeployment, action: str, resource: str, key: str,
        service: str) -> None:
    """The pipeline stack gives its source connection to CodePipeline and its roles to the
    services that run them, and the launch role may pass them to nothing else."""
    documents = example.launch_role_documents()
    assert allows(documents, Request(action, resource, {key: service}))
    assert not allows(documents, Request(action, resource, {key: "ec2.amazonaws.com"}))
    assert not allows(documents, Request(action, resource))


@pytest.mark.parametrize("action", ["iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole"])
def test_the_cloudformation_role_makes_batch_roles_only_where_the_batch_stack_is_deployed(
        example: scenario.ProjectDeployment, action: str) -> None:
    """A realtime project's per-run stacks create and pass the ``prd`` roles only: its
    CloudFormation role may not make a ``<project>-batch-*`` role (the batch stack's)."""
    assert example.config.deployment.mode == "realtime"
    documents = example.cloudformation_role_documents()
    context = {"iam:PassedToService": "states.amazonaws.com",
               "iam:PermissionsBoundary": "arn:aws:iam::111122223333:policy/mlops-demo-boundary"}
    prd = "arn:aws:iam::111122223333:role/mlops-demo-prd-api"
    assert allows(documents, Request(action, prd, context))
    assert not allows(documents, Request(action, "arn:aws:iam::111122223333:role/mlops-demo-batch-x",
                                         context))


API = "arn:aws:apigateway:us-east-1::/restapis/a1b2c3d4e5"


@pytest.mark.parametrize(("action", "resource"), [
    # API Gateway authorizes by HTTP method on the resource path (API Gateway Developer
    # Guide, "Control access for managing an API"): a create is a POST on the collection.
    ("apigateway:POST", "arn:aws:apigateway:us-east-1::/restapis"),
    ("apigateway:POST", f"{API}/deployments"),
    ("apigateway:POST", f"{API}/stages"),
    ("apigateway:PATCH", f"{API}/stages/prod"),
    ("apigateway:DELETE", API),
    # TagResource: PUT /tags/{resource_arn}, the stage's ARN URL-encoded.
    ("apigateway:PUT", ("arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3Aapigateway%3Aus-east-1"
                       "%3A%3A%2Frestapis%2Fa1b2c3d4e5%2Fstages%2Fprod")),
])
def test_the_cloudformation_role_creates_and_tags_the_rest_api(
        example: scenario.ProjectDeployment, action: str, resource: str) -> None:
    """The calls deploy-prd's REST API needs from the pipeline's CloudFormation role, on the
    ARNs API Gateway checks, including the collection a create is made on and the tags."""
    assert allows(example.cloudformation_role_documents(), Request(action, resource))


@pytest.fixture(scope="module")
def api_key() -> scenario.ProjectDeployment:
    return scenario.deploy(config.parse({"api": {"auth": "api_key"}}))


APIGW = "arn:aws:apigateway:us-east-1::"
KEY, PLAN = f"{APIGW}/apikeys/k1a2b3c4d5", f"{APIGW}/usageplans/p1a2b3"


@pytest.mark.parametrize(("action", "resource"), [
    # As for the REST API: a create is a POST on the collection, a plan's key a POST on
    # the plan's keys, tagging a PUT on /tags/<the resource's ARN, URL-encoded>.
    ("apigateway:POST", f"{APIGW}/apikeys"),
    ("apigateway:POST", f"{APIGW}/usageplans"),
    ("apigateway:POST", f"{PLAN}/keys"),
    ("apigateway:PATCH", PLAN),
    ("apigateway:DELETE", KEY),
    ("apigateway:PUT", f"{APIGW}/tags/{quote(KEY, safe='')}"),
    ("apigateway:PUT", f"{APIGW}/tags/{quote(PLAN, safe='')}"),
])
def test_the_cloudformation_role_creates_and_tags_the_api_key_and_its_usage_plan(
        api_key: scenario.ProjectDeployment, action: str, resource: str) -> None:
    assert api_key.config.api.auth == "api_key"
    assert api_key.env.region == "us-east-1"
    assert allows(api_key.cloudformation_role_documents(), Request(action, resource))


@pytest.fixture(scope="module")
def model_monitor() -> scenario.ProjectDeployment:
    return scenario.deploy(config.parse({"monitoring": {"engine": "model_monitor"}}))


SAGEMAKER = "arn:aws:sagemaker:us-east-1:111122223333"


@pytest.mark.parametrize(("action", "resource"), [
    # CloudFormation generates these names, so the role's ARN patterns cannot name the
    # project: the project's tag does (any model or configuration of the account otherwise).
    ("sagemaker:DeleteModel", f"{SAGEMAKER}:model/model-0a1b2c3d4e5f"),
    ("sagemaker:DeleteEndpointConfig", f"{SAGEMAKER}:endpoint-config/endpointconfig-0a1b2c3d4e5f"),
    ("sagemaker:DeleteDataQualityJobDefinition", f"{SAGEMAKER}:data-quality-job-definition/dq-0a1b2c3d4e5f"),
])
def test_the_cloudformation_role_deletes_generated_sagemaker_names_only_under_the_projects_tag(
        model_monitor: scenario.ProjectDeployment, action: str, resource: str) -> None:
    documents = model_monitor.cloudformation_role_documents()
    assert allows(documents, Request(action, resource, {"aws:ResourceTag/mlops:project": "mlops-demo"}))
    assert not allows(documents, Request(action, resource, {"aws:ResourceTag/mlops:project": "mlops-other"}))
    assert not allows(documents, Request(action, resource))


SLR_PATH = "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
AUTOSCALING_SLR = f"arn:aws:iam::111122223333:{SLR_PATH}AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant"


def test_the_cloudformation_role_creates_only_the_endpoint_autoscaling_service_linked_role(
        example: scenario.ProjectDeployment) -> None:
    """Application Auto Scaling's role for SageMaker variants, asked for by that service
    name (``iam:AWSServiceName``), and no other service's."""
    documents = example.cloudformation_role_documents()
    action = "iam:CreateServiceLinkedRole"
    own = {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
    assert allows(documents, Request(action, AUTOSCALING_SLR, own))
    assert not allows(documents, Request(action, AUTOSCALING_SLR, {"iam:AWSServiceName": "ecs.amazonaws.com"}))
    assert not allows(documents, Request(action, AUTOSCALING_SLR))
    ecs = "arn:aws:iam::111122223333:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    assert not allows(documents, Request(action, ecs, {"iam:AWSServiceName": "ecs.amazonaws.com"}))


# ---------------------------------------------------------------- the IAM evaluator
# Operators as the IAM reference ("IAM JSON policy elements: Condition operators") defines
# them, each on both sides of its boundary.


def conditioned(operator: str, value: Any, key: str = "k") -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {operator: {key: value}}}]}


@pytest.mark.parametrize(
    ("operator", "policy", "request_value", "allowed"),
    [
        ("StringEquals", "abc", "abc", True),
        ("StringEquals", "abc", "ABC", False),
        ("StringNotEquals", "abc", "ABC", True),
        ("StringEqualsIgnoreCase", "abc", "ABC", True),
        ("StringEqualsIgnoreCase", "abc", "abd", False),
        ("StringNotEqualsIgnoreCase", "abc", "ABC", False),
        ("StringNotEqualsIgnoreCase", "abc", "abd", True),
        ("StringLike", "mlops-*-x?", "mlops-a/b-x1", True),
        ("StringLike", "mlops-*", "MLOPS-a", False),
        ("StringLike", "a.b", "axb", False),
        ("StringNotLike", "mlops-*", "other", True),
        ("StringNotLike", "mlops-*", "mlops-a", False),
        ("ArnLike", "arn:aws:iam::*:role/r-*", "arn:aws:iam::1:role/r-x", True),
        ("ArnEquals", "arn:aws:iam::1:role/r", "arn:aws:iam::1:role/s", False),
        ("ArnNotLike", "arn:aws:iam::*:role/r-*", "arn:aws:iam::1:role/r-x", False),
        ("ArnNotEquals", "arn:aws:iam::1:role/r", "arn:aws:iam::1:role/s", True),
        ("Bool", "true", True, True),
        ("Bool", "true", "false", False),
        ("Bool", "False", "false", True),
        ("IpAddress", "10.0.0.0/8", "10.255.0.1", True),
        ("IpAddress", "10.0.0.0/8", "11.0.0.1", False),
        ("IpAddress", "10.0.0.0/8", "not-an-address", False),
        # A CIDR with host bits (a config's ip_allow_list may have one) is its network.
        ("IpAddress", "10.1.2.3/8", "10.200.0.1", True),
        ("NotIpAddress", "10.0.0.0/8", "11.0.0.1", True),
        ("NotIpAddress", "10.0.0.0/8", "10.0.0.1", False),
        ("NumericEquals", "5", "5.0", True),
        ("NumericEquals", "5", "6", False),
        ("NumericNotEquals", "5", "6", True),
        ("NumericNotEquals", "5", "5", False),
        ("NumericLessThan", "5", "4", True),
        ("NumericLessThan", "5", "5", False),
        ("NumericLessThanEquals", "5", "5", True),
        ("NumericLessThanEquals", "5", "6", False),
        ("NumericGreaterThan", "5", "6", True),
        ("NumericGreaterThan", "5", "5", False),
        ("NumericGreaterThanEquals", "5", "5", True),
        ("NumericGreaterThanEquals", "5", "4", False),
        # Any of the policy's values; any of the request's for a plain operator.
        ("StringEquals", ["x", "abc"], "abc", True),
        ("StringEquals", "abc", ["x", "abc"], True),
        ("StringNotEquals", ["x", "abc"], "abc", False),
        ("StringEqualsIfExists", "abc", "abd", False),
        ("ForAnyValue:StringEquals", "a", ["b", "a"], True),
        ("ForAnyValue:StringEquals", "a", ["b", "c"], False),
        ("ForAllValues:StringLike", "a*", ["ab", "ac"], True),
        ("ForAllValues:StringLike", "a*", ["ab", "b"], False),
        ("ForAllValues:StringNotLike", "a*", ["b", "c"], True),
        ("ForAllValues:StringNotLike", "a*", ["b", "ab"], False),
        ("ForAnyValue:StringNotEquals", "a", ["a", "b"], True),
        ("ForAnyValue:StringNotEquals", "a", ["a"], False),
        ("Null", "false", "anything", True),
        ("Null", "true", "anything", False),
    ],
)
def test_each_condition_operator_at_its_boundary(operator: str, policy: Any, request_value: Any, allowed: bool) -> None:
    request = Request("s3:GetObject", "arn:aws:s3:::b/k", {"K": request_value})
    assert decide([conditioned(operator, policy)], request) == ("Allow" if allowed else "ImplicitDeny")


@pytest.mark.parametrize(
    ("operator", "allowed"),
    [("StringEquals", False), ("ForAnyValue:StringEquals", False), ("StringNotEquals", True),
     ("StringEqualsIfExists", True), ("ForAllValues:StringEquals", True), ("Null", False),
     ("NumericLessThan", False), ("NotIpAddress", True)],
)
def test_an_absent_key_fails_all_but_negated_if_exists_for_all_values_and_null(operator: str, allowed: bool) -> None:
    value = "false" if operator == "Null" else "5"
    assert allows([conditioned(operator, value)], Request("s3:GetObject", "*")) is allowed


def test_every_condition_of_a_statement_must_hold() -> None:
    statement = {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {
        "StringEquals": {"a": "1", "b": "2"}, "StringLike": {"c": "x*"}}}
    document = {"Statement": statement}  # a single statement need not be a list
    assert allows([document], Request("s3:GetObject", "*", {"a": "1", "b": "2", "c": "xy"}))
    for context in ({"a": "1", "b": "3", "c": "xy"}, {"a": "0", "b": "2", "c": "xy"},
                    {"a": "1", "b": "2", "c": "y"}):
        assert not allows([document], Request("s3:GetObject", "*", context)), context


def test_an_unsupported_operator_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="^condition operator DateLessThan is not supported by this evaluator$"):
        allows([conditioned("DateLessThan", "2026-01-01T00:00:00Z")],
               Request("s3:GetObject", "*", {"k": "2025-01-01T00:00:00Z"}))


def test_a_statement_without_action_or_resource_applies_to_nothing() -> None:
    for statement in ({"Effect": "Allow", "Resource": "*"}, {"Effect": "Allow", "Action": "*"}):
        assert decide([{"Statement": [statement]}], Request("s3:GetObject", "*")) == "ImplicitDeny"
    deny = {"Effect": "Deny", "Action": "*"}
    assert allows([{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}, deny]}],
                  Request("s3:GetObject", "*"))


def test_a_deny_in_any_document_wins_over_an_allow_in_another() -> None:
    allow = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    deny = {"Statement": [{"Effect": "Deny", "NotAction": "s3:List*", "Resource": "*"}]}
    assert decide([allow, deny], Request("s3:GetObject", "*")) == "Deny"
    assert decide([deny, allow], Request("s3:GetObject", "*")) == "Deny"
    assert decide([allow, deny], Request("s3:ListBucket", "*")) == "Allow"
    assert decide([{"Statement": [{"Effect": "Audit", "Action": "*", "Resource": "*"}]}],
                  Request("s3:GetObject", "*")) == "ImplicitDeny"


def test_wildcards_match_the_whole_text_and_nothing_else() -> None:
    assert wildcard_match("a*c", "abbc") and wildcard_match("a?c", "abc")
    assert not wildcard_match("a?c", "abbc") and not wildcard_match("a*", "ba")
    assert not wildcard_match("a+", "aa") and wildcard_match("a+", "a+")
    assert wildcard_match("S3:get*", "s3:GetObject", case_sensitive=False)
    assert not wildcard_match("S3:get*", "s3:GetObject")
    assert Request("a", "b", {"Key": "v"}).value("kEY") == "v"
    assert Request("a", "b", {"Key": "v"}).value("other") is None


# ---------------------------------------------------------------- the handler-action check
TOPIC = {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "t"}}


def allow(*actions: str) -> dict[str, Any]:
    return {"Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}


def test_a_type_without_handler_permissions_is_a_gap_of_its_own() -> None:
    """...and the resources after it are still checked."""
    stack = DeployedStack("s", {"Resources": {"Made": {"Type": "AWS::Made::Up", "Properties": {}},
                                              "Topic": TOPIC}})
    found = coverage.gaps(stack, [allow("sns:GetTopicAttributes")])
    assert found[0] == coverage.Gap(
        "s", "Made", "AWS::Made::Up", "-", "-", "-", "type not in handler_permissions.json")
    assert {g.logical_id for g in found[1:]} == {"Topic"}


def test_a_handler_action_unknown_to_iam_and_not_withheld_is_a_gap(monkeypatch: pytest.MonkeyPatch) -> None:
    """...and the actions after it are still checked; a withheld one is skipped."""
    table = {"delete": ["sns:NoSuchAction", "sns:Withheld", "sns:DeleteTopic"]}
    monkeypatch.setattr(data, "handlers", lambda: {"AWS::SNS::Topic": table})
    monkeypatch.setattr(data, "withheld", lambda: {"AWS::SNS::Topic": {"sns:Withheld": "never"}})
    stack = DeployedStack("s", {"Resources": {"Topic": TOPIC}})
    topic = stack.resources["Topic"].arn
    denied = coverage.Gap("s", "Topic", "AWS::SNS::Topic", "delete", "sns:DeleteTopic", topic, "ImplicitDeny")
    assert coverage.gaps(stack, [allow("sns:Publish")]) == [coverage.Gap(
        "s", "Topic", "AWS::SNS::Topic", "delete", "sns:NoSuchAction", "-",
        "not in the Service Authorization Reference: withhold it with the reason",
    ), denied]
    table["delete"] = ["sns:Withheld", "sns:DeleteTopic"]
    assert coverage.gaps(stack, [allow("sns:Publish")]) == [denied]
    # An action that acts on nothing the topic names is not called for it.
    table["delete"] = ["kms:Decrypt", "sns:DeleteTopic"]
    assert coverage.gaps(stack, [allow("sns:Publish")]) == [denied]


def test_a_denied_handler_action_is_a_gap_with_its_target_and_context(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {"create": ["sns:CreateTopic", "sns:TagResource"], "delete": ["sns:DeleteTopic"]}
    monkeypatch.setattr(data, "handlers", lambda: {"AWS::SNS::Topic": table})
    tagged = {**TOPIC, "Properties": {**TOPIC["Properties"], "Tags": [{"Key": "team", "Value": "ml"}]}}
    stack = DeployedStack("s", {"Resources": {"Topic": tagged}})
    topic = stack.resources["Topic"].arn
    assert coverage.gaps(stack, [allow("sns:*")]) == []
    found = coverage.gaps(stack, [allow("sns:CreateTopic", "sns:DeleteTopic")])
    assert [(g.stack, g.logical_id, g.operation, g.action, g.resource, g.decision) for g in found] == [
        ("s", "Topic", "create", "sns:TagResource", topic, "ImplicitDeny")]
    assert dict(found[0].context)["aws:RequestTag/team"] == "ml"
    assert coverage.gaps(stack, [allow("sns:*")], operations=("delete",)) == []
    assert [g.action for g in coverage.gaps(stack, [allow("sns:TagResource")], operations=("create", "delete"))] == [
        "sns:CreateTopic", "sns:DeleteTopic"]


def test_s3_uris_name_the_bucket_and_the_object() -> None:
    assert coverage._s3_arns("s3://b/k/x.zip", "aws") == ["arn:aws:s3:::b", "arn:aws:s3:::b/k/x.zip"]
    assert coverage._s3_arns("s3://b", "aws-cn") == ["arn:aws-cn:s3:::b"]


def test_used_actions_are_per_type_and_skip_types_without_handlers() -> None:
    stack = DeployedStack("s", {"Resources": {"Made": {"Type": "AWS::Made::Up", "Properties": {}},
                                              "Topic": TOPIC}})
    used = coverage.used_actions([stack])
    assert set(used) == {"AWS::SNS::Topic"}
    assert {"sns:CreateTopic", "sns:DeleteTopic"} <= used["AWS::SNS::Topic"]
