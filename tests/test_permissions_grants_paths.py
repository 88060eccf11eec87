"""Which IAM resource types a deploying role's grant of one handler action names
(``permissions/grants.py``): the resource's own type, the types the action requires, or
one of its optional types, as the Service Authorization Reference describes the action.

The actions here are made up (``ActionInfo`` written out in the test), so each test pins
one rule with nothing else deciding the outcome; the expected types are written out too.
A wrong choice widens a grant to resources of another type or drops one the handler needs.
"""

from __future__ import annotations

import pytest

from mlops_templates.permissions import data, grants
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
