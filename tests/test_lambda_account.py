"""The account-settings custom resource: sets API Gateway's CloudWatch role against moto,
retries while IAM propagates a new role, and answers CloudFormation on every path (a
real HTTP server on 127.0.0.1 stands in for the pre-signed response URL)."""

from __future__ import annotations

import json
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
    responses.requests.clear()
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
    """Nothing can be reported to CloudFormation: the invocation fails, and the error message
    (Lambda's errorMessage, what the operator reads) says why, word for word."""
    with pytest.raises(ValueError, match=r"^not a CloudFormation custom-resource request: no ResponseURL$"):
        app.handler({"RequestType": "Create"}, FakeContext())


# The response object CloudFormation reads from the pre-signed URL, field by field
# (CloudFormation User Guide, "Custom resource response objects"): written out here, not
# taken from the function, so a renamed or dropped field fails.
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/mlops-account/1"


def test_the_answer_is_exactly_the_response_object_cloudformation_reads(
    app: ModuleType, responses: CloudFormationResponses
) -> None:
    app.handler(event(responses.url), FakeContext())
    ((headers, body),) = responses.requests
    assert json.loads(body) == {
        "Status": "SUCCESS",
        "Reason": "See CloudWatch Logs stream 2026/11/30/[$LATEST]0123456789abcdef",
        "PhysicalResourceId": app.PHYSICAL_ID,
        "StackId": STACK_ID,
        "RequestId": "r-1",
        "LogicalResourceId": "ApiGatewayAccountSettings",
        "NoEcho": False,
        "Data": {"CloudWatchRoleArn": ROLE},
    }
    # The pre-signed URL is signed for an empty content type; the PUT carries no header
    # beyond it, the body's length and those urllib always sends.
    assert headers["content-type"] == "" and headers["content-length"] == str(len(body))
    assert set(headers) == {"accept-encoding", "connection", "content-length", "content-type", "host", "user-agent"}


def test_an_update_answers_with_the_physical_id_cloudformation_sent(
    app: ModuleType, responses: CloudFormationResponses
) -> None:
    request = {**event(responses.url, "Update"), "PhysicalResourceId": "kept-id"}
    app.handler(request, FakeContext())
    assert responses.received[0]["PhysicalResourceId"] == "kept-id"
    assert responses.received[0]["StackId"] == STACK_ID


def test_a_context_without_a_log_stream_still_gives_a_reason(
    app: ModuleType, responses: CloudFormationResponses
) -> None:
    class Bare:
        def get_remaining_time_in_millis(self) -> int:
            return 300_000

    app.handler(event(responses.url), Bare())
    assert responses.received[0]["Reason"] == "See CloudWatch Logs stream ?"


def test_a_long_reason_is_cut_to_what_cloudformation_accepts(
    app: ModuleType, responses: CloudFormationResponses
) -> None:
    app.send(event(responses.url), FakeContext(), "FAILED", "x" * 5000)
    assert responses.received[0]["Reason"] == "x" * 1000


def test_delete_says_why_the_setting_stays(app: ModuleType, responses: CloudFormationResponses) -> None:
    app.handler({**event(responses.url, "Delete"), "PhysicalResourceId": app.PHYSICAL_ID}, FakeContext())
    assert responses.received[0]["Reason"] == "The account setting stays: other APIs rely on it"


def test_a_missing_role_property_is_reported_as_such(app: ModuleType, responses: CloudFormationResponses) -> None:
    request = event(responses.url)
    del request["ResourceProperties"]
    app.handler(request, FakeContext())
    assert responses.received[0]["Status"] == "FAILED"
    assert responses.received[0]["Reason"] == (
        "ValueError: ResourceProperties.CloudWatchRoleArn must be a role ARN (got '')")


def test_the_role_is_set_with_a_replace_patch(app: ModuleType, responses: CloudFormationResponses,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(app.APIGATEWAY, "update_account", lambda **kwargs: calls.append(kwargs) or {})
    app.handler(event(responses.url), FakeContext())
    assert calls == [{"patchOperations": [{"op": "replace", "path": "/cloudwatchRoleArn", "value": ROLE}]}]


def test_an_unexpected_error_is_reported_with_its_type(app: ModuleType, responses: CloudFormationResponses,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**kwargs: Any) -> None:
        raise ZeroDivisionError("surprise")

    monkeypatch.setattr(app.APIGATEWAY, "update_account", boom)
    app.handler(event(responses.url), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == "unexpected error: ZeroDivisionError: surprise"
    assert answer["RequestId"] == "r-1"


def test_retries_back_off_exponentially_up_to_the_deadline_before_the_report_margin(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """110 s left, 20 s kept to report: retry until 90 s. Waits 2, 4, 8, 16, then 30 (the
    cap): the sixth wait ends exactly at 90 s, which is still allowed; the seventh would not."""
    clock = [1000.0]
    sleeps: list[float] = []
    calls: list[int] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    def never(**kwargs: Any) -> Any:
        calls.append(1)
        raise client_error("BadRequestException", "The role ARN does not have required permissions set to API Gateway", "UpdateAccount")

    monkeypatch.setattr(app.APIGATEWAY, "update_account", never)
    monkeypatch.setattr(app.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(app.time, "sleep", sleep)
    app.handler(event(responses.url), FakeContext(remaining_ms=110_000))
    assert sleeps == [2, 4, 8, 16, 30, 30]
    assert len(calls) == 7
    assert responses.received[0]["Status"] == "FAILED"


@pytest.mark.parametrize("response", [{}, {"Error": {"Code": "BadRequestException"}}])
def test_an_error_without_a_message_fails_at_once_as_an_api_error(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch,
    response: dict[str, Any],
) -> None:
    from botocore.exceptions import ClientError

    def fail(**kwargs: Any) -> Any:
        raise ClientError(response, "UpdateAccount")

    monkeypatch.setattr(app.APIGATEWAY, "update_account", fail)
    app.handler(event(responses.url), FakeContext())
    (answer,) = responses.received
    assert answer["Status"] == "FAILED" and answer["Reason"].startswith("ClientError: An error occurred")


def test_an_event_without_identifiers_still_gets_an_answer_of_strings(
    app: ModuleType, responses: CloudFormationResponses
) -> None:
    """A hand-made event (a manual test invoke) with only a ResponseURL is answered FAILED,
    and the identifiers it lacks are empty strings, as the response object's schema types
    them: never null, never an invented value."""
    app.handler({"ResponseURL": responses.url}, FakeContext())
    assert responses.received == [{
        "Status": "FAILED",
        "Reason": "ValueError: unknown RequestType None",
        "PhysicalResourceId": app.PHYSICAL_ID,
        "StackId": "",
        "RequestId": "",
        "LogicalResourceId": "",
        "NoEcho": False,
        "Data": {},
    }]


def test_the_answer_cannot_hang_on_a_stalled_response_url(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PUT to the response URL has a finite timeout: a stalled connection raises inside the
    function (which then tries to report FAILED and logs the error) instead of blocking until
    Lambda ends the invocation. Both PUTs fit in the function's timeout."""
    import urllib.request

    from mlops_templates.stacks.account import FUNCTION_TIMEOUT_SECONDS

    real = urllib.request.urlopen
    timeouts: list[float | None] = []

    def spy(request: Any, *, timeout: float | None = None) -> Any:
        timeouts.append(timeout)  # None: no timeout (Lambda sets no default socket timeout)
        return real(request) if timeout is None else real(request, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", spy)
    app.handler(event(responses.url), FakeContext())
    assert responses.statuses == ["SUCCESS"]
    (timeout,) = timeouts
    assert isinstance(timeout, int | float) and 0 < 2 * timeout < FUNCTION_TIMEOUT_SECONDS
    # Every try of the report fits in the time kept back for it.
    assert 0 < app.REPORT_ATTEMPTS * timeout <= app.REPORT_MARGIN_SECONDS


@pytest.mark.parametrize("failures", [1, 2])
def test_a_failed_report_is_tried_once_more(
    app: ModuleType, responses: CloudFormationResponses, monkeypatch: pytest.MonkeyPatch,
    failures: int,
) -> None:
    """A PUT that fails (a reset, a timeout, S3's 5xx) is tried a second time: unanswered,
    CloudFormation would wait an hour. After two failures the error is raised (Lambda logs
    it with the invocation)."""
    import urllib.error
    import urllib.request

    real = urllib.request.urlopen
    calls: list[int] = []

    def flaky(request: Any, *, timeout: float | None = None) -> Any:
        calls.append(1)
        if len(calls) <= failures:
            raise urllib.error.URLError(ConnectionResetError("connection reset by peer"))
        return real(request, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", flaky)
    if failures < app.REPORT_ATTEMPTS:
        app.handler(event(responses.url), FakeContext())
        assert responses.statuses == ["SUCCESS"] and len(calls) == 2
    else:
        with pytest.raises(urllib.error.URLError, match="connection reset"):
            app.send(event(responses.url), FakeContext(), "SUCCESS", "done")
        assert responses.statuses == [] and len(calls) == 2
