"""The pipeline stack's teardown custom resource: on Delete it deletes the per-run stacks
in moto's CloudFormation, wave by wave, and answers CloudFormation on every path (a real
HTTP server on 127.0.0.1 stands in for the pre-signed response URL)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_templates import config
from mlops_templates.inline import ZIPFILE_LIMIT, inline_code
from mlops_templates.stacks import pipeline

from .conftest import EXAMPLE_CONFIG
from .lambda_helpers import CloudFormationResponses, FakeContext, mocked_aws, reset_moto

STACKS = ["mlops-demo-deploy-prd", "mlops-demo-deploy-dev", "mlops-demo-workflow"]
WAVES = "mlops-demo-deploy-prd,mlops-demo-deploy-dev;mlops-demo-workflow"
ROLE = "arn:aws:iam::123456789012:role/mlops-demo-cloudformation"
TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})


@pytest.fixture(scope="module")
def responses() -> Iterator[CloudFormationResponses]:
    server = CloudFormationResponses()
    yield server
    server.close()


@pytest.fixture(scope="module")
def app() -> Iterator[ModuleType]:
    with mocked_aws(), pytest.MonkeyPatch.context() as patch:
        patch.setenv("STACK_WAVES", WAVES)
        patch.setenv("ROLE_ARN", ROLE)
        spec = importlib.util.find_spec("mlops_templates.inline.teardown")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(autouse=True)
def _fresh(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    reset_moto()
    responses.received.clear()
    monkeypatch.setenv("STACK_WAVES", WAVES)
    monkeypatch.setenv("ROLE_ARN", ROLE)
    monkeypatch.setattr(app.time, "sleep", lambda seconds: None)
    yield


def event(url: str, kind: str = "Delete") -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/SC-123456789012-pp-x/1",
        "RequestId": "r-1",
        "LogicalResourceId": pipeline.TEARDOWN,
        "PhysicalResourceId": "run-stacks",
        "ResourceProperties": {},
    }


def _create(*names: str) -> None:
    client = boto3.client("cloudformation")
    for name in names:
        client.create_stack(StackName=name, TemplateBody=TEMPLATE)


def _alive() -> set[str]:
    stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    return {s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"}


def test_delete_removes_the_run_stacks_wave_by_wave(app: ModuleType, responses: CloudFormationResponses, monkeypatch) -> None:
    _create(*STACKS, "mlops-other-deploy-prd")
    order: list[tuple[str, str]] = []
    real = app.CFN.delete_stack

    def recording(**kwargs: Any) -> Any:
        order.append((kwargs["StackName"], kwargs["RoleARN"]))
        return real(**kwargs)

    monkeypatch.setattr(app.CFN, "delete_stack", recording)
    app.handler(event(responses.url), FakeContext())
    assert [a["Status"] for a in responses.received] == ["SUCCESS"]
    assert _alive() == {"mlops-other-deploy-prd"}
    # The endpoint stacks first (together), the workflow after them, all with the deploy role.
    assert order == [(name, ROLE) for name in STACKS]


def test_stacks_that_never_existed_are_skipped(app: ModuleType, responses: CloudFormationResponses) -> None:
    _create("mlops-demo-workflow")
    app.handler(event(responses.url), FakeContext())
    assert [a["Status"] for a in responses.received] == ["SUCCESS"]
    assert _alive() == set()


@pytest.mark.parametrize("kind", ["Create", "Update"])
def test_create_and_update_change_nothing(app: ModuleType, responses: CloudFormationResponses, kind: str) -> None:
    _create(*STACKS)
    app.handler(event(responses.url, kind), FakeContext())
    assert [a["Status"] for a in responses.received] == ["SUCCESS"]
    assert _alive() == set(STACKS)


def test_a_stack_that_fails_to_delete_fails_the_resource_with_its_reason(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto cannot fail a deletion: the describe calls answer as CloudFormation does."""
    _create(*STACKS)

    def describe_stacks(StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"StackName": StackName, "StackStatus": "DELETE_FAILED"}]}

    def describe_stack_events(StackName: str) -> dict[str, Any]:
        return {"StackEvents": [
            {"LogicalResourceId": StackName, "ResourceStatus": "DELETE_FAILED"},
            {"LogicalResourceId": "Endpoint", "ResourceStatus": "DELETE_FAILED",
             "ResourceStatusReason": "Endpoint is in use"},
        ]}

    monkeypatch.setattr(app.CFN, "describe_stacks", describe_stacks)
    monkeypatch.setattr(app.CFN, "describe_stack_events", describe_stack_events)
    app.handler(event(responses.url), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "FAILED"
    assert "mlops-demo-deploy-prd could not be deleted: Endpoint: Endpoint is in use" in answer["Reason"]


def test_a_deletion_that_outlasts_the_function_continues_in_a_new_invocation(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(*STACKS)
    monkeypatch.setattr(app, "deleted", lambda name: False)  # the stacks take their time
    invoked: list[dict[str, Any]] = []
    monkeypatch.setattr(app.LAMBDA, "invoke", lambda **kwargs: invoked.append(kwargs))
    context = FakeContext(remaining_ms=30_000)
    context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlops-demo-teardown"
    app.handler(event(responses.url), context)
    assert responses.received == []  # the next invocation answers
    (call,) = invoked
    assert call["InvocationType"] == "Event"
    assert call["FunctionName"] == context.invoked_function_arn
    assert json.loads(call["Payload"]) == event(responses.url)


def test_an_unexpected_error_is_reported(app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACK_WAVES")
    app.handler(event(responses.url), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "FAILED" and "STACK_WAVES" in answer["Reason"]


def test_the_template_carries_the_code_minified_and_within_the_inline_limit() -> None:
    code = inline_code("teardown")
    assert len(code) <= ZIPFILE_LIMIT
    compile(code, "index.py", "exec")
    template = json.loads(pipeline.build(config.load(EXAMPLE_CONFIG)).to_json())
    function = template["Resources"][pipeline.TEARDOWN_FUNCTION]["Properties"]
    assert function["Code"] == {"ZipFile": code}
    assert function["Handler"] == "index.handler"
    waves = function["Environment"]["Variables"]["STACK_WAVES"]["Fn::Sub"]
    assert waves == (
        "mlops-${SageMakerProjectName}-deploy-prd,mlops-${SageMakerProjectName}-deploy-dev;"
        "mlops-${SageMakerProjectName}-workflow"
    )
    resource = template["Resources"][pipeline.TEARDOWN]
    # Deleted before the role that may delete the per-run stacks.
    assert pipeline.CLOUDFORMATION_ROLE in resource["DependsOn"]
    assert any(d.startswith("CloudFormationPolicy") for d in resource["DependsOn"])
