"""Rules that must hold in every stack, for every example config: the cross-stack
counterpart of each stack's own property tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from mlops_templates import config, stacks

from .conftest import EXAMPLE_CONFIG, REPO
from .template_checks import assert_parameters_constrained_and_used

CONFIGS = [EXAMPLE_CONFIG, *sorted((REPO / "tests" / "configs").glob("*.yaml"))]
CASES = [
    (path, name) for path in CONFIGS for name in stacks.STACKS if stacks.enabled(name, config.load(path))
]
IDS = [f"{path.stem}/{name}" for path, name in CASES]
SUPPORTED_RUNTIMES = re.compile(r"^python3\.(1[2-9]|[2-9]\d)$")


@cache
def template(path: str, name: str) -> dict[str, Any]:
    return json.loads(stacks.module(name).build(config.load(path)).to_json())


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resources(tpl: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in tpl["Resources"].items():
        if resource["Type"] == kind:
            yield logical_id, resource.get("Properties", {})


@pytest.fixture(params=CASES, ids=IDS)
def tpl(request: pytest.FixtureRequest) -> dict[str, Any]:
    path, name = request.param
    return template(str(path), name)


def test_every_parameter_is_used_and_constrained(tpl: dict[str, Any]) -> None:
    assert_parameters_constrained_and_used(tpl)


def test_data_at_rest_is_encrypted_with_a_customer_managed_key(tpl: dict[str, Any]) -> None:
    for logical_id, props in resources(tpl, "AWS::Logs::LogGroup"):
        assert "KmsKeyId" in props, logical_id
    for logical_id, props in resources(tpl, "AWS::SNS::Topic"):
        assert "KmsMasterKeyId" in props, logical_id
    for logical_id, props in resources(tpl, "AWS::SageMaker::EndpointConfig"):
        assert "KmsKeyId" in props, logical_id
    for logical_id, props in resources(tpl, "AWS::KMS::Key"):
        assert props.get("EnableKeyRotation") is True, logical_id
    for logical_id, props in resources(tpl, "AWS::S3::Bucket"):
        rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        algorithm = rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
        # S3 delivers server access logs only to SSE-S3 buckets: the log bucket alone.
        assert algorithm == "aws:kms" or "LoggingConfiguration" not in props, logical_id


def test_no_bucket_is_public(tpl: dict[str, Any]) -> None:
    for logical_id, props in resources(tpl, "AWS::S3::Bucket"):
        block = props["PublicAccessBlockConfiguration"]
        assert all(block[key] is True for key in (
            "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"
        )), logical_id
    policies = {p["Bucket"]["Ref"] for _, p in resources(tpl, "AWS::S3::BucketPolicy")}
    buckets = {logical_id for logical_id, _ in resources(tpl, "AWS::S3::Bucket")}
    assert buckets <= policies, f"buckets without a TLS-only policy: {buckets - policies}"


def test_no_iam_policy_grants_every_action(tpl: dict[str, Any]) -> None:
    for logical_id, resource in tpl["Resources"].items():
        if resource["Type"] == "AWS::KMS::Key":
            continue  # the account root administers its keys: kms:* on the key itself
        for node in walk(resource.get("Properties", {})):
            if isinstance(node, dict) and "Action" in node and node.get("Effect") == "Allow":
                actions = node["Action"] if isinstance(node["Action"], list) else [node["Action"]]
                for action in actions:
                    assert action != "*" and not str(action).endswith(":*"), f"{logical_id}: {action}"


def test_lambda_runtimes_are_current(tpl: dict[str, Any]) -> None:
    for kind in ("AWS::Lambda::Function", "AWS::Serverless::Function"):
        for logical_id, props in resources(tpl, kind):
            assert SUPPORTED_RUNTIMES.match(props["Runtime"]), f"{logical_id}: {props['Runtime']}"


def test_production_api_is_never_open(tpl: dict[str, Any]) -> None:
    for logical_id, props in resources(tpl, "AWS::Serverless::Api"):
        auth = props.get("Auth", {})
        assert auth.get("DefaultAuthorizer") == "AWS_IAM" or auth.get("ApiKeyRequired") is True, logical_id
    for logical_id, props in resources(tpl, "AWS::ApiGateway::Method"):
        assert props.get("AuthorizationType") != "NONE" or props.get("ApiKeyRequired") is True, logical_id


def test_what_a_stack_keeps_never_blocks_its_retry(tpl: dict[str, Any]) -> None:
    """Data is kept when a stack is deleted but removed when the stack's own first create
    fails (RetainExceptOnCreate), so a failed create leaves nothing that blocks the retry;
    a kept log group's name carries its stack's ID, so a re-created stack never meets it.
    The one plain Retain: the account's API Gateway role, which the account setting
    keeps pointing at (its name is generated, so it blocks nothing)."""
    for logical_id, resource in tpl["Resources"].items():
        policy = resource.get("DeletionPolicy")
        if policy == "Retain":
            assert resource["Type"] == "AWS::IAM::Role" and "RoleName" not in resource["Properties"], logical_id
        if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]:
            name = resource["Properties"]["LogGroupName"]
            assert "Fn::Sub" in name and "${Suffix}" in json.dumps(name), logical_id
            assert "AWS::StackId" in json.dumps(name), logical_id
