"""The account stack: the API Gateway CloudWatch Logs role, set by a custom resource that
retries while IAM propagates the role (not AWS::ApiGateway::Account, which fails when
API Gateway checks the role first); rendered and deployed only when the config asks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_templates import config, naming, render, sam
from mlops_templates.errors import ConfigError
from mlops_templates.stacks import account

from .conftest import EXAMPLE_CONFIG


def _template(cfg: config.Config) -> dict[str, Any]:
    return json.loads(account.build(cfg).to_json())


def test_the_role_is_set_by_a_retrying_custom_resource_and_outlives_the_stack() -> None:
    cfg = config.load(EXAMPLE_CONFIG)
    resources = _template(cfg)["Resources"]
    assert not [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Account"]
    settings = resources[account.SETTINGS]
    assert settings["Type"] == "Custom::ApiGatewayAccountSettings"
    assert settings["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": [account.CLOUDWATCH_ROLE, "Arn"]}
    assert settings["Properties"]["ServiceToken"] == {"Fn::GetAtt": [account.FUNCTION, "Arn"]}
    # CloudFormation stops waiting soon after the function's own timeout, not after an hour.
    function = resources[account.FUNCTION]["Properties"]
    assert settings["Properties"]["ServiceTimeout"] > function["Timeout"]
    assert function["CodeUri"] == "../lambdas/account_settings/"
    role = resources[account.CLOUDWATCH_ROLE]
    assert role["DeletionPolicy"] == "Retain"  # the account setting keeps pointing at it
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": ["apigateway.amazonaws.com"]}
    statements = resources[account.FUNCTION_ROLE]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (passing,) = [s for s in statements if s["Action"] == ["iam:PassRole"]]
    assert passing["Resource"] == [{"Fn::GetAtt": [account.CLOUDWATCH_ROLE, "Arn"]}]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "apigateway.amazonaws.com"}}


def test_the_stack_is_shared_by_the_projects_of_a_prefix() -> None:
    cfg = config.load(EXAMPLE_CONFIG)
    assert naming.stack_name(cfg, "account") == "mlops-account"
    other = config.parse({"project": {"name": "churn"}})
    assert naming.stack_name(other, "account") == "mlops-account"


def test_turned_off_it_is_not_rendered() -> None:
    on = render.render(config.parse({}))
    off = render.render(config.parse({"account": {"api_gateway_logging_role": False}}))
    assert "account.yaml" in on and "account.yaml" not in off


def test_the_moved_setting_is_named_with_its_new_place() -> None:
    with pytest.raises(ConfigError, match="moved to account.api_gateway_logging_role"):
        config.parse({"studio": {"api_gateway_logging_role": False}})


def test_the_sam_expansion_keeps_the_function_and_its_role(monkeypatch: pytest.MonkeyPatch) -> None:
    expanded = sam.expand(_template(config.load(EXAMPLE_CONFIG)))
    kinds = {r["Type"] for r in expanded["Resources"].values()}
    assert {"AWS::Lambda::Function", "Custom::ApiGatewayAccountSettings", "AWS::IAM::Role"} <= kinds
    assert not any(k.startswith("AWS::Serverless::") for k in kinds)
