"""The deploy-time permission check on small, crafted inputs: which ARNs a resource's
properties name (S3 URIs and URLs, log groups, a CodeDeploy-deployed alias), which of them
an action acts on (its own ARN, another resource's, ``*``, a renamed service's twin), the
request context IAM would see (tags only where the action and resource type support
them, the service a role or connection is handed to) and the permission tables' lookups.

Each test asserts the exact findings, so a checker that skipped an action, checked it on
the wrong ARN or context, or reported "everything is allowed" would fail here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from mlops_templates.permissions import coverage, data
from mlops_templates.permissions.deployed import (
    ACCOUNT,
    REGION,
    DeployedResource,
    DeployedStack,
)

from .conftest import REPO

EMPTY = DeployedStack("s", {"Resources": {}})
HERE = f"{REGION}:{ACCOUNT}"


def named(properties: dict[str, Any], kind: str = "AWS::Made::Up", arn: str | None = None) -> DeployedResource:
    """A resource of no known type (no ARN of its own) naming ``properties``."""
    return DeployedResource("R", kind, properties, "r", arn)


def allow(*actions: str, resource: Any = "*", condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def handlers(monkeypatch: pytest.MonkeyPatch, kind: str, table: dict[str, list[str]]) -> None:
    monkeypatch.setattr(data, "handlers", lambda: {kind: table})


# ---------------------------------------------------------------- the ARNs a resource names


def test_s3_uris_and_s3_urls_name_their_bucket_and_object_and_other_urls_nothing() -> None:
    resource = named({
        "Uri": "s3://bucket/k/x.zip",
        "Site": "https://site.s3.us-east-1.amazonaws.com/a/b.html",
        # Not S3: a queue URL, a page whose path has ".s3.", plain http.
        "Queue": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q",
        "Page": "https://example.com/a.s3.b/x",
        "Plain": "http://old.s3.amazonaws.com/k",
    })
    assert coverage.candidate_arns(resource, EMPTY) == [
        "arn:aws:s3:::bucket", "arn:aws:s3:::bucket/k/x.zip",
        "arn:aws:s3:::site", "arn:aws:s3:::site/a/b.html",
    ]


def test_the_code_of_a_function_is_its_s3_object_even_without_a_key() -> None:
    resource = named({"Code": {"S3Bucket": "code", "S3Key": "k/f.zip"}})
    assert coverage.candidate_arns(resource, EMPTY) == ["arn:aws:s3:::code/k/f.zip"]
    assert coverage.candidate_arns(named({"Code": {"S3Bucket": "code"}}), EMPTY) == ["arn:aws:s3:::code/"]


def test_a_log_groups_any_stream_suffix_is_dropped_and_only_a_log_groups() -> None:
    """``log-group:NAME:*`` (its streams) is the log group the handler acts on; a
    function's ``:*`` (any version) is part of the ARN the policy must match."""
    resource = named({
        "LogGroupArn": f"arn:aws:logs:{HERE}:log-group:/aws/x:*",
        "Target": f"arn:aws:lambda:{HERE}:function:g:*",
        "Exact": f"arn:aws:logs:{HERE}:log-group:/aws/y",
    })
    assert coverage.candidate_arns(resource, EMPTY) == [
        f"arn:aws:logs:{HERE}:log-group:/aws/x",
        f"arn:aws:lambda:{HERE}:function:g:*",
        f"arn:aws:logs:{HERE}:log-group:/aws/y",
    ]


def _codedeploy_stack() -> DeployedStack:
    return DeployedStack("s", {"Resources": {
        "Alias": {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": "f", "Name": "live"},
                  "UpdatePolicy": {"CodeDeployLambdaAliasUpdate": {
                      "ApplicationName": "app", "DeploymentGroupName": "dg"}}},
        "Group": {"Type": "AWS::CodeDeploy::DeploymentGroup", "Properties": {
            "ApplicationName": "app", "DeploymentGroupName": "dg", "DeploymentConfigName": "cfg"}},
        "OtherGroup": {"Type": "AWS::CodeDeploy::DeploymentGroup", "Properties": {
            "ApplicationName": "app", "DeploymentGroupName": "other", "DeploymentConfigName": "other-cfg"}},
    }})


def test_an_alias_deployed_by_codedeploy_acts_on_its_application_group_and_their_config() -> None:
    stack = _codedeploy_stack()
    base = f"arn:aws:codedeploy:{HERE}"
    assert coverage.candidate_arns(stack.resources["Alias"], stack) == [
        f"arn:aws:lambda:{HERE}:function:f:live",
        f"{base}:application:app", f"{base}:deploymentgroup:app/dg", f"{base}:deploymentconfig:cfg",
        # FunctionName names the function.
        f"arn:aws:lambda:{HERE}:function:f",
    ]


def test_implied_arns_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """A type with a service-linked role and a CodeDeploy update keeps both."""
    service = "sagemaker.application-autoscaling.amazonaws.com"
    monkeypatch.setitem(coverage.SERVICE_LINKED, "AWS::Lambda::Alias", service)
    stack = _codedeploy_stack()
    found = coverage.candidate_arns(stack.resources["Alias"], stack)
    assert f"arn:aws:iam::{ACCOUNT}:{coverage.SERVICE_LINKED_ROLES[service]}" in found
    assert f"arn:aws:codedeploy:{HERE}:application:app" in found


# ---------------------------------------------------------------- what an action acts on


def test_an_action_without_resource_types_is_checked_on_star(monkeypatch: pytest.MonkeyPatch) -> None:
    handlers(monkeypatch, "AWS::Made::Up", {"create": ["kms:CreateKey"]})
    stack = DeployedStack("s", {"Resources": {"K": {"Type": "AWS::Made::Up", "Properties": {}}}})
    assert coverage.gaps(stack, [allow("kms:CreateKey", resource=f"arn:aws:kms:{HERE}:key/*")]) == [
        coverage.Gap("s", "K", "AWS::Made::Up", "create", "kms:CreateKey", "*", "ImplicitDeny")]
    assert coverage.gaps(stack, [allow("kms:CreateKey")]) == []


def test_an_action_on_the_resource_itself_is_checked_on_its_own_arn_not_one_it_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers(monkeypatch, "AWS::SNS::Topic", {"delete": ["sns:DeleteTopic"]})
    other = f"arn:aws:sns:{HERE}:other"
    stack = DeployedStack("s", {"Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {
        "TopicName": "t", "DeadLetterTopic": other}}}})
    topic = stack.resources["T"].arn
    assert coverage.gaps(stack, [allow("sns:DeleteTopic", resource=topic)]) == []
    assert coverage.gaps(stack, [allow("sns:Publish")]) == [
        coverage.Gap("s", "T", "AWS::SNS::Topic", "delete", "sns:DeleteTopic", topic, "ImplicitDeny")]


CONNECTION = f"arn:aws:codeconnections:{HERE}:connection/abc"


def test_a_codestar_action_on_a_codeconnections_arn_is_checked_as_its_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    """IAM evaluates the action under the prefix of the connection's ARN."""
    handlers(monkeypatch, "AWS::Made::Up", {"create": ["codestar-connections:UseConnection"]})
    stack = DeployedStack("s", {"Resources": {"P": {"Type": "AWS::Made::Up", "Properties": {
        "ConnectionArn": CONNECTION}}}})
    assert coverage.gaps(stack, [allow("codestar-connections:UseConnection")]) == [coverage.Gap(
        "s", "P", "AWS::Made::Up", "create", "codeconnections:UseConnection", CONNECTION, "ImplicitDeny")]
    assert coverage.gaps(stack, [allow("codeconnections:UseConnection", resource=CONNECTION)]) == []
    assert coverage.used_actions([stack]) == {"AWS::Made::Up": {"codestar-connections:UseConnection"}}


# ---------------------------------------------------------------- the request context


def test_a_connection_passed_by_a_type_of_no_known_service_is_passed_to_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handlers(monkeypatch, "AWS::Made::Up", {"create": ["codeconnections:PassConnection"]})
    stack = DeployedStack("s", {"Resources": {"P": {"Type": "AWS::Made::Up", "Properties": {
        "ConnectionArn": CONNECTION}}}})
    only_codebuild = {"StringEquals": {"codeconnections:PassedToService": "codebuild.amazonaws.com"}}
    assert coverage.gaps(stack, [allow("codeconnections:PassConnection", condition=only_codebuild)]) == [
        coverage.Gap("s", "P", "AWS::Made::Up", "create", "codeconnections:PassConnection", CONNECTION,
                     "ImplicitDeny", (("codeconnections:PassedToService", ""),))]


def test_a_passed_role_and_a_service_linked_role_name_their_service_in_the_context() -> None:
    function = named({}, kind="AWS::Lambda::Function")
    target = named({}, kind="AWS::ApplicationAutoScaling::ScalableTarget")
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    pass_role, linked = data.action("iam:PassRole"), data.action("iam:CreateServiceLinkedRole")
    assert pass_role and linked
    assert coverage.request_context(pass_role, function, "create", role, "role") == {
        "iam:PassedToService": "lambda.amazonaws.com"}
    assert coverage.request_context(linked, target, "create", role, "role") == {
        "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
    # Only the action that creates the service-linked role names the service.
    assert coverage.request_context(pass_role, target, "create", role, "role") == {
        "iam:PassedToService": "application-autoscaling.amazonaws.com"}


TAGS = {"team": "ml"}


def test_tag_keys_are_in_the_context_only_where_the_targets_resource_type_supports_them() -> None:
    """Keys the reference lists for another resource type of the action stay out."""
    info = data.ActionInfo(
        "svc:CreateThing", {"thing": False, "other": False}, frozenset(),
        {"thing": frozenset(), "other": frozenset({
            "aws:RequestTag/${TagKey}", "aws:TagKeys", "aws:ResourceTag/${TagKey}"})},
    )
    resource = DeployedResource("R", "AWS::Made::Up", {}, "r", "arn:aws:svc:::thing/r", dict(TAGS))
    for operation in ("create", "update", "delete"):
        assert coverage.request_context(info, resource, operation, resource.arn, "thing") == {}
    assert coverage.request_context(info, resource, "update", resource.arn, "other") == {
        "aws:RequestTag/team": "ml", "aws:TagKeys": ["team"], "aws:ResourceTag/team": "ml"}


@pytest.mark.parametrize("name", ["svc:RegisterThing", "svc:PutThing", "svc:CreateThing", "svc:TagResource"])
def test_create_put_register_and_tagging_calls_send_the_tags(name: str) -> None:
    info = data.ActionInfo(name, {}, frozenset({"aws:RequestTag/${TagKey}", "aws:TagKeys"}), {})
    resource = DeployedResource("R", "AWS::Made::Up", {}, "r", None, dict(TAGS))
    assert coverage.request_context(info, resource, "create", "*", None) == {
        "aws:RequestTag/team": "ml", "aws:TagKeys": ["team"]}
    describe = data.ActionInfo("svc:DescribeThing", {}, info.condition_keys, {})
    assert coverage.request_context(describe, resource, "create", "*", None) == {}


# ---------------------------------------------------------------- the tables


def test_which_condition_keys_an_action_supports() -> None:
    info = data.ActionInfo("svc:Act", {"a": False, "b": False}, frozenset({"svc:Global"}), {
        "a": frozenset({"svc:OnA", "aws:ResourceTag/${TagKey}"}),
        "b": frozenset({"svc:OnB", "svc:Pair/${X}/of/${Y}"}),
    })
    # Without a resource type: the global keys and every type's.
    for key in ("svc:Global", "SVC:GLOBAL", "svc:OnA", "svc:OnB", "aws:ResourceTag/team"):
        assert info.supports(key), key
    # With one: the global keys and that type's only.
    assert info.supports("svc:Global", "a") and info.supports("svc:OnA", "a")
    assert info.supports("aws:resourcetag/team", "a")
    assert not info.supports("svc:OnA", "b") and not info.supports("aws:ResourceTag/team", "b")
    assert info.supports("svc:Pair/1/of/2", "b")
    # A key is the whole name, or a template's fixed part followed by its variable.
    for key in ("svc:Nothing", "svc:GlobalKey", "svc:OnBx"):
        assert not info.supports(key), key


def test_handler_actions_of_a_type_missing_from_the_table_say_how_to_add_it() -> None:
    with pytest.raises(KeyError) as error:
        data.handler_actions("AWS::Made::Up")
    assert error.value.args == (
        "AWS::Made::Up is not in handler_permissions.json: run scripts/gen_permission_data.py",)


def test_handler_and_required_actions_are_those_of_the_operations_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operation the handler table does not list calls nothing."""
    handlers(monkeypatch, "AWS::SNS::Topic", {
        "create": ["sns:CreateTopic", "sns:Withheld"], "delete": ["sns:DeleteTopic"]})
    monkeypatch.setattr(data, "withheld", lambda: {"AWS::SNS::Topic": {"sns:Withheld": "never"}})
    assert data.handler_actions("AWS::SNS::Topic", ("create", "read")) == {"sns:CreateTopic", "sns:Withheld"}
    assert data.required_actions("AWS::SNS::Topic", ("create", "read")) == {"sns:CreateTopic"}
    assert data.required_actions("AWS::SNS::Topic") == {"sns:CreateTopic", "sns:DeleteTopic"}


def test_the_tables_read_as_utf8_whatever_the_locale(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reason with a non-ASCII character still loads under the C locale."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.json").write_text(json.dumps({"why": "caf\u00e9"}, ensure_ascii=False), "utf-8")
    monkeypatch.setattr(data, "files", lambda _: tmp_path)
    assert data._load("t.json") == {"why": "caf\u00e9"}
    code = (
        "import pathlib, sys\n"
        "from mlops_templates.permissions import data\n"
        f"data.files = lambda _: pathlib.Path({str(tmp_path)!r})\n"
        "print(ascii(data._load('t.json')))\n"
    )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ascii({"why": "caf\u00e9"})
