"""Safety: every error the inference API can answer has the documented status and message.

One row per documented status of ``lambdas/README.md`` (400, 404, 405, 413, 415, 429, a
ModelError's own 4xx/5xx passed through, 502 for other AWS errors and a ModelError without
a status, 500 for an unexpected error or a missing ``ENDPOINT_NAME``), with the status and
the caller's message written out. The handler is loaded as Lambda loads it (under moto, by
``tests.lambda_helpers``); endpoint errors come from ``botocore.stub.Stubber`` on the
function's own client, and a request refused before the endpoint has no stubbed answer, so
calling the endpoint would fail the row.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.stub import ANY, Stubber

from tests.lambda_helpers import FakeContext, load_lambda, mocked_aws

ENDPOINT = "mlops-abalone-prd"
ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
SIX_MB = 6 * 1024 * 1024  # 6291456 bytes: InvokeEndpoint's and Lambda's payload limit
RUNTIME_URL = "https://runtime.sagemaker.us-east-1.amazonaws.com"
UNREACHABLE = "The model endpoint could not be reached."
THROTTLED = "Too many requests; retry later."
NOT_AVAILABLE = f"The model endpoint '{ENDPOINT}' is not available."


@pytest.fixture(scope="module")
def api_module() -> Iterator[ModuleType]:
    with mocked_aws():
        yield load_lambda("api")


def event(
    body: str | None = ROW,
    content_type: str | None = "text/csv",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway REST proxy event (payload format 1.0)."""
    all_headers = {"Content-Type": content_type} if content_type is not None else {}
    all_headers.update(headers or {})
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": None,
        "requestContext": {"stage": "prod", "requestId": "r-1"},
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def model_error(original_status: int | None, original_message: str | None,
                message: str = "Received client error from primary.") -> dict[str, Any]:
    fields = {}
    if original_status is not None:
        fields["OriginalStatusCode"] = original_status
    if original_message is not None:
        fields["OriginalMessage"] = original_message
    return {"code": "ModelError", "message": message, "http": 424, "fields": fields or None}


def aws_error(code: str, message: str, http: int) -> dict[str, Any]:
    return {"code": code, "message": message, "http": http, "fields": None}


def bare_error(http: int, code: str | None = None) -> ClientError:
    """An InvokeEndpoint error with less than botocore usually parses (no message, and no
    code unless one is given): the mapping must not trip on a missing field. Stubber always
    sets both, so these are raised by hand."""
    error = {"Error": {"Code": code}} if code else {}
    return ClientError({**error, "ResponseMetadata": {"HTTPStatusCode": http}}, "InvokeEndpoint")


P = pytest.param
#: (request event, what the endpoint does, expected status, expected message)
#: "endpoint": None = never called; a dict = that service error; an exception = raised by
#: the client; "no-endpoint-name" = the function's ENDPOINT_NAME is not set.
ERRORS = [
    # 400: the request is not one the endpoint can take
    P(event(""), None, 400, "The request body is empty.", id="400-empty-body"),
    P(event(None), None, 400, "The request body is empty.", id="400-no-body"),
    P(event(" \n"), None, 400, "The request body is empty.", id="400-blank-body"),
    P(event("{nope", "application/json"), None, 400,
      "The request body is not valid JSON: Expecting property name enclosed in double quotes.",
      id="400-invalid-json"),
    P(event("not base64!", base64_encoded=True), None, 400,
      "The request body is not valid base64.", id="400-invalid-base64"),
    P(event(base64.b64encode(b"\xff\xfe").decode(), base64_encoded=True), None, 400,
      "The request body is not valid utf-8 text.", id="400-not-utf-8"),
    P(event(headers={"X-Amzn-SageMaker-Inference-Id": "x" * 65}), None, 400,
      "X-Amzn-SageMaker-Inference-Id must be 1-64 printable ASCII characters.",
      id="400-inference-id-too-long"),
    P(event(), aws_error("ValidationError", "Input payload is not valid.", 400), 400,
      "Input payload is not valid.", id="400-endpoint-validation-error"),
    P(event(), aws_error("ValidationException", "Bad input.", 400), 400,
      "Bad input.", id="400-endpoint-validation-exception"),
    P(event(), bare_error(400, "ValidationError"), 400, "The endpoint rejected the request.",
      id="400-endpoint-validation-without-message"),
    # 404: the endpoint does not exist
    P(event(), aws_error("ValidationError", f"Endpoint {ENDPOINT} of account 111122223333 not found.", 400),
      404, NOT_AVAILABLE, id="404-endpoint-not-found"),
    P(event(), aws_error("ValidationError", f"Could not find endpoint \"{ENDPOINT}\".", 400),
      404, NOT_AVAILABLE, id="404-could-not-find-endpoint"),
    # 405: only POST
    P(event(method="GET"), None, 405, "Method GET is not allowed; use POST.", id="405-get"),
    P(event(method="PUT"), None, 405, "Method PUT is not allowed; use POST.", id="405-put"),
    # 413: over 6 MB, as text or as base64
    P(event("1" * (SIX_MB + 1)), None, 413, "The request body exceeds 6291456 bytes.",
      id="413-one-byte-over"),
    P(event(base64.b64encode(b"1" * (SIX_MB + 1)).decode(), base64_encoded=True), None, 413,
      "The request body exceeds 6291456 bytes.", id="413-base64-one-byte-over"),
    # 415: media type or charset the model does not read
    P(event(content_type="text/plain"), None, 415,
      "Unsupported Content-Type 'text/plain'; use text/csv or application/json.", id="415-text-plain"),
    P(event(content_type=None), None, 415,
      "Unsupported Content-Type 'none'; use text/csv or application/json.", id="415-no-content-type"),
    P(event(content_type="text/csv; charset=latin-1"), None, 415,
      "Unsupported charset 'latin-1'; use utf-8.", id="415-latin-1"),
    P(event(content_type="text/csv; charset=klingon"), None, 415,
      "Unsupported charset 'klingon'; use utf-8.", id="415-unknown-charset"),
    # 429: throttled, by any of the throttling codes or by the HTTP status
    P(event(), aws_error("ThrottlingException", "Rate exceeded", 400), 429, THROTTLED, id="429-throttling-exception"),
    P(event(), aws_error("Throttling", "Rate exceeded", 400), 429, THROTTLED, id="429-throttling"),
    P(event(), aws_error("TooManyRequestsException", "Slow down", 400), 429, THROTTLED, id="429-too-many-requests"),
    P(event(), aws_error("RequestLimitExceeded", "Slow down", 400), 429, THROTTLED, id="429-request-limit"),
    P(event(), aws_error("SlowDown", "Slow down", 429), 429, THROTTLED, id="429-http-status"),
    P(event(), bare_error(429), 429, THROTTLED, id="429-http-status-without-error-details"),
    # 4xx/5xx: a ModelError passes the container's own status and message through
    P(event(), model_error(400, '{"message": "row 1: expected 8 columns"}'), 400,
      "row 1: expected 8 columns", id="model-400-json-message"),
    P(event(), model_error(400, "plain text error"), 400, "plain text error", id="model-400-text"),
    P(event(), model_error(404, "no such route"), 404, "no such route", id="model-404"),
    P(event(), model_error(413, "too large"), 413, "too large", id="model-413"),
    P(event(), model_error(415, '{"message": "unsupported Content-Type"}'), 415,
      "unsupported Content-Type", id="model-415"),
    P(event(), model_error(429, "busy"), 429, "busy", id="model-429"),
    P(event(), model_error(500, '{"message": "prediction failed"}'), 500, "prediction failed", id="model-500"),
    P(event(), model_error(503, "worker restarting"), 503, "worker restarting", id="model-503"),
    P(event(), model_error(599, "edge of 5xx"), 599, "edge of 5xx", id="model-599"),
    # 502: a ModelError without a 4xx/5xx status, and every other AWS error
    P(event(), model_error(None, None, "boom"), 502, "boom", id="502-model-error-without-status"),
    P(event(), bare_error(424, "ModelError"), 502, "The model returned an error.",
      id="502-model-error-without-any-message"),
    P(event(), model_error(399, "not an error status"), 502, "not an error status", id="502-model-399"),
    P(event(), model_error(600, "not an http status"), 502, "not an http status", id="502-model-600"),
    P(event(), aws_error("ServiceUnavailable", "secret internals", 503), 502, UNREACHABLE, id="502-service-unavailable"),
    P(event(), aws_error("InternalFailure", "secret internals", 500), 502, UNREACHABLE, id="502-internal-failure"),
    P(event(), aws_error("AccessDeniedException", "role x is not authorized", 403), 502, UNREACHABLE,
      id="502-access-denied"),
    P(event(), bare_error(503), 502, UNREACHABLE, id="502-without-error-details"),
    P(event(), EndpointConnectionError(endpoint_url=RUNTIME_URL), 502, UNREACHABLE, id="502-connection"),
    P(event(), ConnectTimeoutError(endpoint_url=RUNTIME_URL), 502, UNREACHABLE, id="502-connect-timeout"),
    P(event(), ReadTimeoutError(endpoint_url=RUNTIME_URL), 502, UNREACHABLE, id="502-read-timeout"),
    # 500: an unexpected error, or no endpoint configured
    P(event(), RuntimeError("secret detail"), 500, "Internal error.", id="500-unexpected"),
    P(event(), "no-endpoint-name", 500, "The API is not configured.", id="500-no-endpoint-name"),
]


@pytest.mark.parametrize(("request_event", "endpoint", "status", "text"), ERRORS)
def test_api_error_mapping(
    api_module: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    request_event: dict[str, Any],
    endpoint: Any,
    status: int,
    text: str,
) -> None:
    api = api_module
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    with Stubber(api.RUNTIME) as stub:
        if endpoint == "no-endpoint-name":
            monkeypatch.delenv("ENDPOINT_NAME")
        elif isinstance(endpoint, dict):
            stub.add_client_error(
                "invoke_endpoint",
                service_error_code=endpoint["code"],
                service_message=endpoint["message"],
                http_status_code=endpoint["http"],
                modeled_fields=endpoint["fields"],
            )
        elif isinstance(endpoint, Exception):
            def fail(**_: Any) -> None:
                raise endpoint

            monkeypatch.setattr(api.RUNTIME, "invoke_endpoint", fail)
        response = api.handler(request_event, FakeContext())
        stub.assert_no_pending_responses()
    assert response["statusCode"] == status
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == {"message": text}
    assert response["isBase64Encoded"] is False
    if status == 405:
        assert response["headers"]["Allow"] == "POST"
    if status in (500, 502):
        # Details of AWS or of the code stay in the log, never in the answer.
        assert "secret" not in response["body"] and "Traceback" not in response["body"]


def test_six_megabytes_exactly_is_not_too_large(api_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 413 boundary from the other side: 6291456 bytes reach the endpoint."""
    from io import BytesIO

    from botocore.response import StreamingBody

    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    with Stubber(api_module.RUNTIME) as stub:
        stub.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(BytesIO(b"9.5"), 3), "ContentType": "text/csv"},
            expected_params={"EndpointName": ENDPOINT, "ContentType": "text/csv",
                             "Accept": "text/csv", "Body": ANY},
        )
        response = api_module.handler(event("1" * SIX_MB), FakeContext())
        stub.assert_no_pending_responses()
    assert response["statusCode"] == 200
    assert response["body"] == "9.5"
