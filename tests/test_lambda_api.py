"""The inference API function (lambdas/api) against moto and botocore stubs.

Successful invocations use moto's SageMaker runtime with results configured through
moto's API. moto cannot make InvokeEndpoint fail, so the error mappings (ModelError,
ValidationError, throttling) use ``botocore.stub.Stubber`` on the function's client,
which also checks the exact parameters forwarded to the endpoint.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import ANY, Stubber

from tests.lambda_helpers import (
    FakeContext,
    load_lambda,
    mocked_aws,
    reset_moto,
    set_endpoint_results,
)

ENDPOINT = "mlops-abalone-prd"
ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
CONTEXT = FakeContext()


@pytest.fixture(scope="module")
def api_module() -> Iterator[ModuleType]:
    with mocked_aws():
        yield load_lambda("api")


@pytest.fixture
def api(api_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    reset_moto()
    return api_module


@pytest.fixture
def stub(api: ModuleType) -> Iterator[Stubber]:
    with Stubber(api.RUNTIME) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def event(
    body: str | None = ROW,
    content_type: str | None = "text/csv",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    all_headers = {"Content-Type": content_type} if content_type is not None else {}
    all_headers.update(headers or {})
    return {
        "resource": "/invocations",
        "path": "/invocations",
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "requestContext": {"stage": "live", "requestId": "r-1"},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def message(response: dict[str, Any]) -> str:
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert set(body) == {"message"}
    return body["message"]


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


def stream(data: bytes) -> Any:
    from io import BytesIO

    from botocore.response import StreamingBody

    return StreamingBody(BytesIO(data), len(data))


# --- success through moto ---------------------------------------------------------------


def test_csv_request_returns_the_endpoint_answer(
    api: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    set_endpoint_results(
        {
            "Body": "9.87",
            "ContentType": "text/csv; charset=utf-8",
            "InvokedProductionVariant": "AllTraffic",
            "CustomAttributes": "trace=abc",
        }
    )
    response = api.handler(event(), CONTEXT)
    assert response == {
        "statusCode": 200,
        "headers": {
            "Content-Type": "text/csv; charset=utf-8",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=abc",
            "X-Amzn-Invoked-Production-Variant": "AllTraffic",
        },
        "body": "9.87",
        "isBase64Encoded": False,
    }
    [line] = log_lines(capsys)
    assert line["message"] == "invoked"
    assert line["level"] == "INFO"
    assert line["status"] == 200
    assert line["endpoint"] == ENDPOINT
    assert line["request_id"] == CONTEXT.aws_request_id
    # What the caller sent, for an operator matching a slow or failed call to its request.
    assert line["content_type"] == "text/csv" and line["bytes"] == len(ROW)


def test_json_request_with_charset_is_accepted(api: ModuleType) -> None:
    set_endpoint_results({"Body": '{"predictions": [9.87]}', "ContentType": "application/json"})
    response = api.handler(
        event(json.dumps({"instances": [ROW]}), "application/json; charset=UTF-8"), CONTEXT
    )
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"predictions": [9.87]}
    assert "X-Amzn-SageMaker-Custom-Attributes" not in response["headers"]


def test_binary_answer_is_base64_encoded(api: ModuleType) -> None:
    set_endpoint_results({"Body": "\x00\x01raw", "ContentType": "application/octet-stream"})
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == 200
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]) == b"\x00\x01raw"
    assert response["headers"] == {"Content-Type": "application/octet-stream"}


def test_an_answer_without_a_content_type_is_labelled_as_bytes(api: ModuleType, stub: Stubber) -> None:
    """An endpoint answer without ContentType goes back base64-encoded with the HTTP type
    for unknown bytes, application/octet-stream, so the client knows what it got."""
    stub.add_response("invoke_endpoint", {"Body": stream(b"9.5")})
    assert api.handler(event(), CONTEXT) == {
        "statusCode": 200,
        "headers": {"Content-Type": "application/octet-stream"},
        "body": base64.b64encode(b"9.5").decode(),
        "isBase64Encoded": True,
    }


# --- what is forwarded (Stubber checks the exact parameters) -----------------------------


@pytest.mark.parametrize(
    ("request_event", "expected"),
    [
        pytest.param(
            event(),
            {"ContentType": "text/csv", "Accept": "text/csv", "Body": ROW.encode()},
            id="accept-defaults-to-content-type",
        ),
        pytest.param(
            event(headers={"accept": "*/*"}),
            {"ContentType": "text/csv", "Accept": "text/csv", "Body": ROW.encode()},
            id="wildcard-accept",
        ),
        pytest.param(
            event(
                '{"a": 1}',
                content_type=None,
                headers={
                    "content-type": "application/json; charset=utf-8",
                    "ACCEPT": "application/json",
                    "x-amzn-sagemaker-custom-attributes": "trace=1",
                },
            ),
            {
                "ContentType": "application/json; charset=utf-8",
                "Accept": "application/json",
                "Body": b'{"a": 1}',
                "CustomAttributes": "trace=1",
            },
            id="headers-any-case",
        ),
        pytest.param(
            event(base64.b64encode(ROW.encode()).decode(), base64_encoded=True),
            {"ContentType": "text/csv", "Accept": "text/csv", "Body": ROW.encode()},
            id="base64-body",
        ),
        pytest.param(
            # Data capture records it: ground truth joins on it; "synthetic-" ids are
            # left out of monitoring.
            event(headers={"X-Amzn-SageMaker-Inference-Id": "synthetic-pre-traffic-d-1"}),
            {"ContentType": "text/csv", "Accept": "text/csv", "Body": ROW.encode(),
             "InferenceId": "synthetic-pre-traffic-d-1"},
            id="inference-id",
        ),
    ],
)
def test_forwarded_parameters(
    api: ModuleType, stub: Stubber, request_event: dict[str, Any], expected: dict[str, Any]
) -> None:
    stub.add_response(
        "invoke_endpoint",
        {"Body": stream(b"9.5"), "ContentType": "text/csv"},
        expected_params={"EndpointName": ENDPOINT, **expected},
    )
    response = api.handler(request_event, CONTEXT)
    assert response["statusCode"] == 200
    assert response["body"] == "9.5"


# --- requests refused before the endpoint is called --------------------------------------

SIX_MB = 6 * 1024 * 1024


@pytest.mark.parametrize(
    ("request_event", "status", "words"),
    [
        pytest.param(event(""), 400, "empty", id="empty-body"),
        pytest.param(event(None), 400, "empty", id="no-body"),
        pytest.param(event("  \n"), 400, "empty", id="blank-body"),
        pytest.param(event(content_type="text/plain"), 415, "text/plain", id="text-plain"),
        pytest.param(event(content_type=None), 415, "Content-Type", id="no-content-type"),
        pytest.param(event(content_type="text/csv; charset=klingon"), 415, "charset", id="charset"),
        pytest.param(event(content_type="text/csv; charset=base64"), 415, "charset", id="codec"),
        pytest.param(
            event(content_type="text/csv; charset=latin-1"), 415, "utf-8", id="not-utf-8"
        ),
        pytest.param(event("é,1", "text/csv; charset=us-ascii"), 400, "ascii", id="not-ascii"),
        pytest.param(event("{nope", "application/json"), 400, "JSON", id="invalid-json"),
        pytest.param(event("x" * (SIX_MB + 1)), 413, "exceeds", id="too-large"),
        pytest.param(
            event(base64.b64encode(b"x" * (SIX_MB + 1)).decode(), base64_encoded=True),
            413,
            "exceeds",
            id="too-large-base64",
        ),
        pytest.param(event("not base64!", base64_encoded=True), 400, "base64", id="bad-base64"),
        pytest.param(event(base64_encoded=True, body=""), 400, "empty", id="empty-base64"),
        pytest.param(
            event(base64.b64encode(b"\xff\xfe").decode(), base64_encoded=True),
            400,
            "utf-8",
            id="not-text",
        ),
        pytest.param(event(method="GET"), 405, "POST", id="get"),
    ],
)
def test_bad_requests_are_refused(
    api: ModuleType,
    stub: Stubber,
    capsys: pytest.CaptureFixture[str],
    request_event: dict[str, Any],
    status: int,
    words: str,
) -> None:
    # The stub has no queued response: a call to the endpoint would fail the test.
    response = api.handler(request_event, CONTEXT)
    assert response["statusCode"] == status
    assert words in message(response)
    if status == 405:
        assert response["headers"]["Allow"] == "POST"
    [line] = log_lines(capsys)
    assert line["message"] == "request_rejected"
    assert line["status"] == status


def test_six_megabytes_exactly_is_forwarded(api: ModuleType, stub: Stubber) -> None:
    stub.add_response(
        "invoke_endpoint",
        {"Body": stream(b"1"), "ContentType": "text/csv"},
        expected_params={
            "EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "text/csv", "Body": ANY
        },
    )
    assert api.handler(event("1" * SIX_MB), CONTEXT)["statusCode"] == 200


@pytest.mark.parametrize("inference_id", ["", "x" * 65, "caf\u00e9", "tab\there"])
def test_a_malformed_inference_id_is_a_bad_request(api: ModuleType, inference_id: str) -> None:
    response = api.handler(event(headers={"X-Amzn-SageMaker-Inference-Id": inference_id}), CONTEXT)
    assert response["statusCode"] == 400
    assert "X-Amzn-SageMaker-Inference-Id" in message(response)


# --- endpoint errors ----------------------------------------------------------------------


def test_model_error_passes_the_original_status_and_message(
    api: ModuleType, stub: Stubber
) -> None:
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error (400) from primary with message \"bad row\".",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": 400,
            "OriginalMessage": "bad row: expected 8 features",
            "LogStreamArn": "arn:aws:logs:us-east-1:111122223333:log-group:x",
        },
    )
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == 400
    assert message(response) == "bad row: expected 8 features"


@pytest.mark.parametrize(
    ("original_status", "body", "expected"),
    [
        # The project's container answers {"message": ...} JSON: the caller gets the message,
        # not JSON inside a message.
        (400, '{"message": "row 1, column 2 (length): not a number (got \'x\')"}',
         "row 1, column 2 (length): not a number (got 'x')"),
        (415, '{"message": "unsupported Content-Type"}', "unsupported Content-Type"),
        # Other images answer plain text or other JSON: passed through as it is.
        (400, "plain text error", "plain text error"),
        (400, '{"error": "x"}', '{"error": "x"}'),
        (503, "[1, 2]", "[1, 2]"),
    ],
)
def test_model_error_unwraps_the_containers_json_message(
    api: ModuleType, stub: Stubber, original_status: int, body: str, expected: str
) -> None:
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received client error from primary.",
        http_status_code=424,
        modeled_fields={"OriginalStatusCode": original_status, "OriginalMessage": body},
    )
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == original_status
    assert message(response) == expected


def test_model_error_without_original_status_is_a_bad_gateway(
    api: ModuleType, stub: Stubber
) -> None:
    stub.add_client_error(
        "invoke_endpoint", service_error_code="ModelError", service_message="boom",
        http_status_code=424,
    )
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == 502
    assert message(response) == "boom"


@pytest.mark.parametrize(
    ("code", "text", "http_status", "status", "expected"),
    [
        pytest.param(
            "ValidationError",
            f"Endpoint {ENDPOINT} of account 111122223333 not found.",
            400, 404, f"The model endpoint '{ENDPOINT}' is not available.",
            id="endpoint-not-found",
        ),
        pytest.param(
            "ValidationError", "Input payload is not valid.", 400, 400,
            "Input payload is not valid.", id="validation",
        ),
        pytest.param(
            "ThrottlingException", "Rate exceeded", 400, 429, "Too many requests; retry later.",
            id="throttling",
        ),
        pytest.param(
            "ServiceUnavailable", "secret internals", 503, 502,
            "The model endpoint could not be reached.", id="other-service-error",
        ),
        pytest.param(
            "AccessDeniedException", "User arn:aws:iam::111122223333:role/x is not authorized",
            403, 502, "The model endpoint could not be reached.", id="access-denied",
        ),
    ],
)
def test_endpoint_errors_are_mapped(
    api: ModuleType,
    stub: Stubber,
    capsys: pytest.CaptureFixture[str],
    code: str,
    text: str,
    http_status: int,
    status: int,
    expected: str,
) -> None:
    stub.add_client_error(
        "invoke_endpoint", service_error_code=code, service_message=text,
        http_status_code=http_status,
    )
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == status
    assert message(response) == expected
    [line] = log_lines(capsys)
    assert line["message"] == "invoke_failed"
    assert line["error_code"] == code
    assert line["status"] == status


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"),
    ],
    ids=["connection", "read-timeout"],
)
def test_transport_errors_are_a_bad_gateway(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def fail(**_: Any) -> None:
        raise error

    monkeypatch.setattr(api.RUNTIME, "invoke_endpoint", fail)
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == 502
    assert message(response) == "The model endpoint could not be reached."


def test_unexpected_error_hides_the_trace_and_logs_it(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(**_: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(api.RUNTIME, "invoke_endpoint", fail)
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == 500
    assert message(response) == "Internal error."
    assert "secret" not in response["body"] and "Traceback" not in response["body"]
    [line] = log_lines(capsys)
    assert line["level"] == "ERROR"
    assert "Traceback" in line["exception"] and "secret detail" in line["exception"]


def test_missing_endpoint_name_is_a_configuration_error(
    api: ModuleType, monkeypatch: pytest.MonkeyPatch, stub: Stubber
) -> None:
    monkeypatch.delenv("ENDPOINT_NAME")
    response = api.handler(event(), CONTEXT)
    assert response["statusCode"] == 500
    assert message(response) == "The API is not configured."


# --- client configuration -----------------------------------------------------------------


def test_client_answers_before_the_api_gateway_timeout(api: ModuleType) -> None:
    config = api.RUNTIME.meta.config
    assert config.retries["mode"] in ("standard", "adaptive")
    attempts = config.retries["total_max_attempts"]
    assert attempts >= 2
    # API Gateway ends an integration after 29 s.
    assert attempts * (config.connect_timeout + config.read_timeout) < 29
    assert api.RUNTIME.meta.service_model.service_name == "sagemaker-runtime"
