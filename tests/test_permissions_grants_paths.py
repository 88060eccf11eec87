"""Which IAM resource types a deploying role's grant of one handler action names
(``permissions/grants.py``): the resource's own type, the types the action requires, or
one of its optional types, as the Service Authorization Reference describes the action.

The actions here are made up (``ActionInfo`` written out in the test), so each test pins
one rule with nothing else deciding the outcome; the expected types are written out too.
A wrong choice widens a grant to resources of another type or drops one the handler needs.
"""

from __future__ import annotations

import json
import re

import pytest

from mlops_templates import config
from mlops_templates.permissions import data, grants, scenario
from mlops_templates.permissions.deployed import TypeSpec


def _action(name: str, **types: bool) -> data.ActionInfo:
    """An action acting on ``types`` (resource type -> required)."""
    return data.ActionInfo(name, dict(types), frozenset(), {})


def _scope(*types: tuple[str, str]) -> grants.Scope:
    return grants.Scope(resources={t: (f"arn:aws:{t[0]}:::{t[1]}/*",) for t in types})


ENDPOINT = ("sagemaker", "endpoint")
CONFIG = ("sagemaker", "endpoint-config")


def test_an_action_that_requires_the_resources_own_type_among_others_acts_on_its_own() -> None:
    # sagemaker:CreateEndpoint requires both the endpoint and its config; the endpoint's
    # handler is granted it on the endpoint (the config is another resource's grant).
    info = _action("sagemaker:CreateEndpoint", **{"endpoint": True, "endpoint-config": True})
    assert grants.action_types("AWS::SageMaker::Endpoint", info) == [ENDPOINT]


def test_an_action_of_another_service_never_acts_on_the_resources_own_type() -> None:
    # The same type name under another service prefix is another resource type.
    info = _action("other:Describe", endpoint=True, thing=True)
    assert grants.action_types("AWS::SageMaker::Endpoint", info) == [("other", "endpoint"), ("other", "thing")]


def test_an_action_not_on_the_own_type_acts_on_every_type_it_requires() -> None:
    info = _action("sagemaker:AddAssociation", **{"endpoint-config": True, "model": True, "endpoint": False})
    assert grants.action_types("AWS::SageMaker::Endpoint", info) == [CONFIG, ("sagemaker", "model")]


def test_an_action_that_requires_other_types_is_granted_on_all_of_them_not_the_first() -> None:
    info = _action("sagemaker:AddAssociation", **{"endpoint-config": True, "model": True})
    scope = _scope(CONFIG, ("sagemaker", "model"))
    assert grants._scoped_types("AWS::SageMaker::Endpoint", info, scope) == [CONFIG, ("sagemaker", "model")]


def test_an_action_with_one_optional_type_keeps_it_even_where_the_scope_lacks_it() -> None:
    # Scope.patterns then names the missing type ("no scope for ..."), not a choice.
    info = _action("other:ListTags", thing=False)
    assert grants._scoped_types("AWS::SageMaker::Endpoint", info, _scope()) == [("other", "thing")]


def test_an_optional_own_type_is_the_one_an_action_of_its_service_acts_on() -> None:
    info = _action("sagemaker:Search", **{"endpoint-config": False, "model": False})
    assert grants.action_types("AWS::SageMaker::Endpoint", info) == [ENDPOINT]


def test_an_action_with_several_optional_types_uses_the_first_the_scope_defines() -> None:
    info = _action("other:Search", a=False, b=False, c=False)
    scope = _scope(("other", "c"), ("other", "b"))
    assert grants._scoped_types("AWS::SageMaker::Endpoint", info, scope) == [("other", "b")]


def test_an_action_with_several_optional_types_none_in_the_scope_names_them_all() -> None:
    info = _action("other:Search", a=False, b=False)
    with pytest.raises(KeyError) as error:
        grants._scoped_types("AWS::SageMaker::Endpoint", info, _scope())
    assert error.value.args == (
        "AWS::SageMaker::Endpoint: other:Search acts on one of a, b: add one to the Scope",
    )


def test_a_type_without_a_service_or_without_an_iam_type_has_no_own_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(grants.TYPES, "Test::Only::Service", TypeSpec("sagemaker", None, None))
    monkeypatch.setitem(grants.TYPES, "Test::Only::Type", TypeSpec(None, "endpoint", None))
    assert grants.own_type("Test::Only::Service") is None
    assert grants.own_type("Test::Only::Type") is None
    assert grants.own_type("Test::Not::Known") is None
    assert grants.own_type("AWS::SageMaker::Endpoint") == ENDPOINT


# Which tag condition a grant carries (``_tag_mode``): the calls of a resource's handler
# are real (the registry schema's), the actions' condition keys are made up.
TAGGED = grants.Scope(
    resources={ENDPOINT: ("*",), ("kms", "key"): ("*",)},
    tagged=frozenset({ENDPOINT, ("kms", "key")}),
    tag=("mlops:project", "demo"),
)
RESOURCE_TAG = "aws:ResourceTag/${TagKey}"
REQUEST_TAG = "aws:RequestTag/${TagKey}"


def _keys(name: str, own: dict[str, frozenset[str]], general: frozenset[str] = frozenset()) -> data.ActionInfo:
    return data.ActionInfo(name, dict.fromkeys(own, True), general, own)


def test_a_later_call_on_a_tagged_resource_is_conditioned_on_its_tag_where_the_action_supports_it() -> None:
    # sagemaker:UpdateEndpoint is not among the endpoint handler's create/read calls.
    supported = _keys("sagemaker:UpdateEndpoint", {"endpoint": frozenset({RESOURCE_TAG})})
    assert grants._tag_mode("AWS::SageMaker::Endpoint", supported.name, supported, ENDPOINT, TAGGED) == "resource"


def test_a_later_call_whose_action_cannot_see_the_resources_tag_carries_no_condition() -> None:
    # The key is supported on another of the action's types, not on the endpoint itself:
    # a condition IAM cannot evaluate on the endpoint would deny every call.
    elsewhere = _keys("sagemaker:UpdateEndpoint", {"endpoint": frozenset(), "endpoint-config": frozenset({RESOURCE_TAG})})
    assert grants._tag_mode("AWS::SageMaker::Endpoint", elsewhere.name, elsewhere, ENDPOINT, TAGGED) == ""
    nowhere = _keys("sagemaker:UpdateEndpoint", {"endpoint": frozenset()})
    assert grants._tag_mode("AWS::SageMaker::Endpoint", nowhere.name, nowhere, ENDPOINT, TAGGED) == ""


def test_the_condition_asks_for_the_scopes_tag_key() -> None:
    # The reference spells tag keys as ${TagKey}; an action that named its keys would be
    # asked for the project's key (mlops:project), not its value or nothing.
    literal = _keys("sagemaker:UpdateEndpoint", {"endpoint": frozenset({"aws:ResourceTag/mlops:project"})})
    assert grants._tag_mode("AWS::SageMaker::Endpoint", literal.name, literal, ENDPOINT, TAGGED) == "resource"
    other = _keys("sagemaker:UpdateEndpoint", {"endpoint": frozenset({"aws:ResourceTag/demo"})})
    assert grants._tag_mode("AWS::SageMaker::Endpoint", other.name, other, ENDPOINT, TAGGED) == ""


def test_a_create_call_that_sends_the_tags_is_conditioned_on_the_request_tag() -> None:
    # kms:CreateKey and kms:TagResource are both among the key handler's create calls.
    create = _keys("kms:CreateKey", {}, frozenset({REQUEST_TAG}))
    assert grants._tag_mode("AWS::KMS::Key", create.name, create, grants.ANY, TAGGED) == "request"
    tag = _keys("kms:TagResource", {"key": frozenset({REQUEST_TAG})})
    assert grants._tag_mode("AWS::KMS::Key", tag.name, tag, ("kms", "key"), TAGGED) == "request"
    # The request tag is supported only on another of the action's types: none on the key.
    elsewhere = _keys("kms:TagResource", {"key": frozenset(), "alias": frozenset({REQUEST_TAG})})
    assert grants._tag_mode("AWS::KMS::Key", elsewhere.name, elsewhere, ("kms", "key"), TAGGED) == ""
    # A create-time read is never conditioned: the handler reads back what it made.
    read = _keys("kms:DescribeKey", {"key": frozenset({RESOURCE_TAG, REQUEST_TAG})})
    assert grants._tag_mode("AWS::KMS::Key", read.name, read, ("kms", "key"), TAGGED) == ""


# The CodeConnections rename: an action of codestar-connections is granted under both
# prefixes where the scope has a connection of each (IAM evaluates the prefix of the
# connection's ARN), on that connection only.
PIPELINE = "AWS::CodePipeline::Pipeline"
OLD = ("codestar-connections", "Connection")
NEW = ("codeconnections", "Connection")


def test_a_renamed_services_action_is_granted_under_each_prefix_the_scope_has_a_connection_of() -> None:
    info = data.action("codestar-connections:UseConnection")
    assert info is not None
    assert grants._variants(PIPELINE, info, _scope(OLD, NEW)) == [
        ("codeconnections:UseConnection", [NEW]),
        ("codestar-connections:UseConnection", [OLD]),
    ]
    assert grants._variants(PIPELINE, info, _scope(NEW)) == [("codeconnections:UseConnection", [NEW])]
    assert grants._variants(PIPELINE, info, _scope(OLD)) == [("codestar-connections:UseConnection", [OLD])]


def test_a_renamed_services_action_without_a_connection_in_the_scope_is_refused_by_name() -> None:
    info = data.action("codestar-connections:UseConnection")
    assert info is not None
    with pytest.raises(KeyError) as error:
        grants._variants(PIPELINE, info, _scope())
    assert error.value.args == (
        "AWS::CodePipeline::Pipeline: no scope for codestar-connections:UseConnection or its codeconnections twin",
    )
    # Without a twin in the reference, the action's own types decide, and their error names the resource.
    alone = _action("codestar-connections:Unheard", a=False, b=False)
    with pytest.raises(KeyError) as error:
        grants._variants(PIPELINE, alone, _scope())
    assert error.value.args == (
        "AWS::CodePipeline::Pipeline: codestar-connections:Unheard acts on one of a, b: add one to the Scope",
    )


def test_a_deployment_without_connections_grants_the_connection_actions_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    scope = grants.Scope(resources={}, absent=frozenset({OLD, NEW}))
    info = data.action("codestar-connections:UseConnection")
    assert info is not None
    assert grants._variants(PIPELINE, info, scope) == [("codestar-connections:UseConnection", [OLD])]
    monkeypatch.setattr(data, "required_actions", lambda kind: {"codestar-connections:UseConnection"})
    assert grants.grants([PIPELINE], scope) == {}


def test_a_handler_action_missing_from_the_reference_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "required_actions", lambda kind: {"sagemaker:Unheard"})
    with pytest.raises(KeyError) as error:
        grants.grants(["AWS::SageMaker::Endpoint"], _scope(ENDPOINT))
    assert error.value.args == (
        ("AWS::SageMaker::Endpoint: handler action sagemaker:Unheard is not in the Service Authorization "
         "Reference; list it in withheld_permissions.json with the reason"),
    )


def test_a_statement_is_named_after_its_services_its_scope_and_its_tag_condition() -> None:
    named = grants._sid(("arn:aws:s3:::b",), "", {"s3:GetObject", "codestar-connections:UseConnection", "s3:PutObject"})
    assert named == "CodestarConnectionsS3"
    assert grants._sid(("*",), "", {"ec2:DescribeVpcs"}) == "Ec2Unscoped"
    assert grants._sid(("arn:aws:kms:*:*:key/*",), "resource", {"kms:DescribeKey"}) == "KmsTagged"
    assert grants._sid(("*",), "request", {"kms:CreateKey"}) == "KmsUnscopedTaggedRequest"
    assert grants._sid(("*", "arn:aws:logs:*:*:*"), "", {"application-autoscaling:Describe"}) == "ApplicationAutoscaling"


def test_statements_are_ordered_by_first_action_and_named_by_scope_and_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "required_actions", lambda kind: {
        "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeEndpoint",
        "sagemaker:UpdateEndpoint", "cloudwatch:GetMetricData"})
    scope = grants.Scope(resources={ENDPOINT: ("arn:aws:sagemaker:*:*:endpoint/p-*",),
                                    CONFIG: ("arn:aws:sagemaker:*:*:endpoint-config/p-*",)},
                         tagged=frozenset({ENDPOINT}), tag=("mlops:project", "demo"))
    rendered = [json.loads(s.to_json()) for s in grants.statements(["AWS::SageMaker::Endpoint"], scope)]
    assert rendered == [
        # No resource types: on "*". The endpoint handler's create and read calls: by name.
        {"Sid": "CloudwatchUnscoped", "Effect": "Allow", "Action": ["cloudwatch:GetMetricData"], "Resource": ["*"]},
        {"Sid": "Sagemaker", "Effect": "Allow", "Action": ["sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint"],
         "Resource": ["arn:aws:sagemaker:*:*:endpoint/p-*"]},
        # The same service again: numbered.
        {"Sid": "Sagemaker2", "Effect": "Allow", "Action": ["sagemaker:DescribeEndpointConfig"],
         "Resource": ["arn:aws:sagemaker:*:*:endpoint-config/p-*"]},
        # A later call on the tagged endpoint: only under the project's tag.
        {"Sid": "SagemakerTagged", "Effect": "Allow", "Action": ["sagemaker:UpdateEndpoint"],
         "Resource": ["arn:aws:sagemaker:*:*:endpoint/p-*"],
         "Condition": {"StringEquals": {"aws:ResourceTag/mlops:project": "demo"}}},
    ]


def test_every_statement_id_of_the_deployment_is_one_iam_accepts() -> None:
    # "The Sid element supports ASCII uppercase letters (A-Z), lowercase letters (a-z),
    # and numbers (0-9)"; "In IAM, the Sid value must be unique within a JSON policy"
    # (IAM User Guide, reference_policies_elements_sid.html).
    deployment = scenario.deploy(config.parse({}))
    stacks = [deployment.studio, deployment.pipeline, *deployment.runs.values()]
    documents = []
    for stack in stacks:
        for resource in stack.resources.values():
            properties = resource.properties
            documents += [p["PolicyDocument"] for p in properties.get("Policies", [])]
            if resource.kind == "AWS::IAM::ManagedPolicy":
                documents.append(properties["PolicyDocument"])
    sids = [[s["Sid"] for s in d["Statement"] if "Sid" in s] for d in documents]
    assert sum(len(s) for s in sids) > 50  # the deploying roles' generated statements among them
    for names in sids:
        assert len(names) == len(set(names)), names
        assert all(re.fullmatch(r"[A-Za-z0-9]+", name) for name in names), names
