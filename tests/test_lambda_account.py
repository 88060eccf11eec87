"""The account-settings custom resource: sets API Gateway's CloudWatch role against moto,
retries while IAM propagates a new role, and answers CloudFormation on every path (a
real HTTP server on 127.0.0.1 stands in for the pre-signed response URL)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from .lambda_helpers import (
    CloudFormationResponses,
    FakeContext,
    client_error,
    load_lambda,
    mocked_aws,
    reset_moto,
)

ROLE = "arn:aws:iam::123456789012:role/mlops-apigateway-cloudwatch"


@pytest.fixture(scope="module")
def responses() -> Iterator[CloudFormationResponses]:
    server = CloudFormationResponses()
    yield server
    server.close()


@pytest.fixture(scope="module")
def app() -> Iterator[ModuleType]:
    with mocked_aws():
        yield load_lambda("account_settings")


@pytest.fixture(autouse=True)
def _fresh(app: ModuleType, responses: CloudFormationResponses) -> Iterator[None]:
    reset_moto()
    responses.received.clear()
    yield


def event(url: str, kind: str = "Create", **props: Any) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/mlops-account/1",
        "RequestId": "r-1",
        "LogicalResourceId": "ApiGatewayAccountSettings",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:x", "CloudWatchRoleArn": ROLE, **props},
    }


def test_create_sets_the_role_and_reports_success(app: ModuleType, responses: CloudFormationResponses) -> None:
    app.handler(event(responses.url), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == app.PHYSICAL_ID
    assert answer["Data"] == {"CloudWatchRoleArn": ROLE}
    assert boto3.client("apigateway").get_account()["cloudwatchRoleArn"] == ROLE


def test_a_role_that_has_not_propagated_yet_is_retried(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = app.APIGATEWAY.update_account
    answers = [
        client_error(
            "BadRequestException",
            "The role ARN does not have required permissions configured. Please grant trust "
            "permission for API Gateway and add the required role policy.",
            "UpdateAccount",
        ),
        client_error("TooManyRequestsException", "Too Many Requests", "UpdateAccount", 429),
    ]

    def flaky(**kwargs: Any) -> Any:
        if answers:
            raise answers.pop(0)
        return real(**kwargs)

    sleeps: list[float] = []
    monkeypatch.setattr(app.APIGATEWAY, "update_account", flaky)
    monkeypatch.setattr(app.time, "sleep", sleeps.append)
    app.handler(event(responses.url), FakeContext())
    assert [a["Status"] for a in responses.received] == ["SUCCESS"]
    assert sleeps == [2, 4]
    assert boto3.client("apigateway").get_account()["cloudwatchRoleArn"] == ROLE


def test_propagation_that_outlasts_the_function_fails_before_its_timeout(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(**kwargs: Any) -> Any:
        raise client_error("BadRequestException", "The role ARN does not have required permissions set to API Gateway", "UpdateAccount")

    monkeypatch.setattr(app.APIGATEWAY, "update_account", never)
    monkeypatch.setattr(app.time, "sleep", lambda s: None)
    # 25 s left: a 20 s margin leaves room for one short backoff only.
    app.handler(event(responses.url), FakeContext(remaining_ms=25_000))
    (answer,) = responses.received
    assert answer["Status"] == "FAILED"
    assert "does not have required permissions" in answer["Reason"]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (client_error("AccessDeniedException", "not authorized to perform iam:PassRole", "UpdateAccount", 403),
         "iam:PassRole"),
        (client_error("BadRequestException", "Invalid ARN", "UpdateAccount"), "Invalid ARN"),
    ],
)
def test_other_errors_fail_at_once_with_the_reason(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch, error: Exception, words: str
) -> None:
    calls = []

    def failing(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise error

    monkeypatch.setattr(app.APIGATEWAY, "update_account", failing)
    app.handler(event(responses.url, "Update"), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "FAILED" and words in answer["Reason"]
    assert len(calls) == 1


def test_delete_keeps_the_account_setting(app: ModuleType, responses: CloudFormationResponses) -> None:
    client = boto3.client("apigateway")
    client.update_account(patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": ROLE}])
    request = {**event(responses.url, "Delete"), "PhysicalResourceId": app.PHYSICAL_ID}
    app.handler(request, FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "SUCCESS"
    assert client.get_account()["cloudwatchRoleArn"] == ROLE


@pytest.mark.parametrize(
    ("kind", "props", "words"),
    [
        ("Create", {"CloudWatchRoleArn": "not-an-arn"}, "must be a role ARN"),
        ("Replace", {}, "unknown RequestType"),
    ],
)
def test_bad_requests_are_reported_as_failed(
    app: ModuleType, responses: CloudFormationResponses, kind: str, props: dict[str, str], words: str
) -> None:
    app.handler(event(responses.url, kind, **props), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "FAILED" and words in answer["Reason"]


def test_an_event_without_a_response_url_fails_the_invocation(app: ModuleType) -> None:
    with pytest.raises(ValueError, match="ResponseURL"):
        app.handler({"RequestType": "Create"}, FakeContext())
