"""Inference API: forwards API Gateway requests to the production SageMaker endpoint.

Event: an API Gateway REST proxy event (payload format 1.0). Environment:

``ENDPOINT_NAME``
    The SageMaker endpoint to invoke (required).
``LOG_LEVEL``
    Optional log level, ``INFO`` by default.

A ``POST`` with a ``text/csv`` or ``application/json`` body is sent to
``sagemaker-runtime:InvokeEndpoint``; the endpoint's body, content type and custom
attributes come back unchanged. Every error is a JSON ``{"message": ...}`` with a 4xx/5xx
status and one structured log line; a stack trace never reaches the caller.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# InvokeEndpoint accepts at most 6 MB, which is also Lambda's synchronous payload limit.
MAX_BODY_BYTES = 6 * 1024 * 1024
SUPPORTED_CONTENT_TYPES = ("text/csv", "application/json")
#: Passed on as InvokeEndpoint's InferenceId (SageMaker's limit: 1-64 printable ASCII).
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
INFERENCE_ID_PATTERN = re.compile(r"[\x20-\x7e]{1,64}")
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
# Media types whose bytes are returned as text; anything else goes back base64-encoded.
TEXT_MEDIA_TYPES = frozenset({"application/json", "application/jsonlines"})

# API Gateway gives up after 29 s: two attempts of (2 s connect + 10 s read) plus the
# standard-mode backoff stay below it, so the caller gets our answer, not a gateway timeout.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=10,
    retries={"total_max_attempts": 2, "mode": "standard"},
)


# -- logging: the same in every lambdas/*/app.py (a test compares them) --------------


class _JsonFormatter(logging.Formatter):
    """One JSON object per record: CloudWatch Logs Insights can filter on every field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StdoutHandler(logging.Handler):
    """Writes to the current ``sys.stdout``, which Lambda ships to CloudWatch Logs."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging must never break the function
            self.handleError(record)


def _make_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    handler = _StdoutHandler()
    handler.setFormatter(_JsonFormatter())
    logger.handlers = [handler]
    # The runtime's root handler would print every record a second time, as plain text.
    logger.propagate = False
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logger.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    return logger


# -- end of logging ----------------------------------------------------------------


LOGGER = _make_logger("mlops.api")
# Created once per execution environment: later invocations reuse its connections.
RUNTIME = boto3.client("sagemaker-runtime", config=CLIENT_CONFIG)


class RequestError(Exception):
    """A request the API refuses, with the HTTP status and message for the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _response(
    status: int, body: str, headers: dict[str, str], base64_encoded: bool = False
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64_encoded,
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return _response(
        status,
        json.dumps({"message": message}),
        {"Content-Type": "application/json", **(headers or {})},
    )


def _headers(event: dict[str, Any]) -> dict[str, str]:
    """Request headers with lower-case names (HTTP header names are case-insensitive)."""
    headers: dict[str, str] = {}
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if values:
            headers[name.lower()] = values[-1]
    for name, value in (event.get("headers") or {}).items():
        if value is not None:
            headers[name.lower()] = value
    return headers


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; key=value`` into the lower-case media type and its parameters."""
    media, *raw_params = value.split(";")
    params = {}
    for raw in raw_params:
        key, _, param_value = raw.partition("=")
        params[key.strip().lower()] = param_value.strip().strip('"')
    return media.strip().lower(), params


def _parse_request(event: dict[str, Any]) -> dict[str, Any]:
    """Validate the proxy event and return the keyword arguments for InvokeEndpoint."""
    method = (event.get("httpMethod") or "POST").upper()
    if method != "POST":
        raise RequestError(405, f"Method {method} is not allowed; use POST.", {"Allow": "POST"})

    headers = _headers(event)
    content_type = headers.get("content-type", "")
    media, params = _media_type(content_type)
    if media not in SUPPORTED_CONTENT_TYPES:
        shown = media or "none"
        raise RequestError(
            415, f"Unsupported Content-Type '{shown}'; use text/csv or application/json."
        )
    charset = params.get("charset", "utf-8")
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        codec = ""
    # Model containers read UTF-8 (and JSON is UTF-8 by definition); ASCII is a subset.
    if codec not in ("utf-8", "ascii"):
        raise RequestError(415, f"Unsupported charset '{charset}'; use utf-8.")

    raw = event.get("body")
    if raw is None or raw == "":
        raise RequestError(400, "The request body is empty.")
    # Refuse an oversize body before decoding it; base64 text is 4/3 of its payload.
    limit = MAX_BODY_BYTES * 4 // 3 + 4 if event.get("isBase64Encoded") else MAX_BODY_BYTES
    if len(raw) > limit:
        raise RequestError(413, f"The request body exceeds {MAX_BODY_BYTES} bytes.")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "The request body is not valid base64.") from None
    else:
        body = raw.encode("utf-8")
    if not body:
        raise RequestError(400, "The request body is empty.")
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"The request body exceeds {MAX_BODY_BYTES} bytes.")

    try:
        text = body.decode(codec)
    except UnicodeDecodeError:
        raise RequestError(400, f"The request body is not valid {codec} text.") from None
    if not text.strip():
        raise RequestError(400, "The request body is empty.")
    if media == "application/json":
        try:
            json.loads(text)
        except ValueError as err:
            raise RequestError(400, f"The request body is not valid JSON: {err.msg}.") from None

    accept = headers.get("accept", "").strip()
    kwargs: dict[str, Any] = {
        "ContentType": content_type.strip(),
        "Accept": accept if accept and accept != "*/*" else media,
        "Body": body,
    }
    custom_attributes = headers.get(CUSTOM_ATTRIBUTES_HEADER.lower())
    if custom_attributes:
        kwargs["CustomAttributes"] = custom_attributes
    inference_id = headers.get(INFERENCE_ID_HEADER.lower())
    if inference_id is not None:
        # Data capture records it (eventMetadata.inferenceId): ground truth joins on it,
        # and the monitor leaves out synthetic traffic (the hooks' "synthetic-" ids).
        if not INFERENCE_ID_PATTERN.fullmatch(inference_id):
            raise RequestError(
                400, f"{INFERENCE_ID_HEADER} must be 1-64 printable ASCII characters."
            )
        kwargs["InferenceId"] = inference_id
    return kwargs


def _container_message(text: str | None) -> str | None:
    """The message of a model container's error body: ``{"message": ...}`` JSON (the
    project's container) or plain text (other images)."""
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"]
    return text


def _error_for(err: ClientError, endpoint_name: str) -> tuple[int, str]:
    """Map an InvokeEndpoint error to the status and message the caller sees."""
    code = err.response.get("Error", {}).get("Code", "")
    message = err.response.get("Error", {}).get("Message", "")
    http_status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "ModelError":
        # The model container answered with an error: pass its status and message through.
        original = err.response.get("OriginalStatusCode")
        status = original if isinstance(original, int) and 400 <= original <= 599 else 502
        original_message = _container_message(err.response.get("OriginalMessage"))
        return status, original_message or message or "The model returned an error."
    if code in THROTTLING_CODES or http_status == 429:
        return 429, "Too many requests; retry later."
    if code in ("ValidationError", "ValidationException"):
        if "not found" in message.lower() or "could not find" in message.lower():
            return 404, f"The model endpoint '{endpoint_name}' is not available."
        return 400, message or "The endpoint rejected the request."
    return 502, "The model endpoint could not be reached."


def _invoke(
    endpoint_name: str, kwargs: dict[str, Any], log_fields: dict[str, Any]
) -> tuple[dict[str, Any], bytes]:
    """The endpoint's answer and body; a failed call is logged and raised as the
    :class:`RequestError` the caller gets."""
    try:
        result = RUNTIME.invoke_endpoint(EndpointName=endpoint_name, **kwargs)
        return result, result["Body"].read()
    except ClientError as err:
        status, message = _error_for(err, endpoint_name)
        LOGGER.warning(
            "invoke_failed",
            extra={
                "fields": {
                    **log_fields,
                    "status": status,
                    "error_code": err.response.get("Error", {}).get("Code"),
                    "error": str(err),
                }
            },
        )
        raise RequestError(status, message) from None
    except BotoCoreError as err:
        LOGGER.error(
            "invoke_failed",
            extra={
                "fields": {
                    **log_fields,
                    "status": 502,
                    "error_code": type(err).__name__,
                    "error": str(err),
                }
            },
        )
        raise RequestError(502, "The model endpoint could not be reached.") from None


def _answer(result: dict[str, Any], payload: bytes, log_fields: dict[str, Any]) -> dict[str, Any]:
    """The proxy response carrying the model's answer (base64 unless it is text)."""
    response_type = result.get("ContentType") or "application/octet-stream"
    headers = {"Content-Type": response_type}
    if result.get("CustomAttributes"):
        headers[CUSTOM_ATTRIBUTES_HEADER] = result["CustomAttributes"]
    if result.get("InvokedProductionVariant"):
        headers[VARIANT_HEADER] = result["InvokedProductionVariant"]
    LOGGER.info(
        "invoked",
        extra={
            "fields": {
                **log_fields,
                "status": 200,
                "variant": result.get("InvokedProductionVariant"),
                "response_bytes": len(payload),
            }
        },
    )
    media, _ = _media_type(response_type)
    if media.startswith("text/") or media in TEXT_MEDIA_TYPES:
        try:
            return _response(200, payload.decode("utf-8"), headers)
        except UnicodeDecodeError:
            pass
    encoded = base64.b64encode(payload).decode("ascii")
    return _response(200, encoded, headers, base64_encoded=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for the API Gateway proxy integration."""
    request_id = getattr(context, "aws_request_id", None)
    endpoint_name = os.environ.get("ENDPOINT_NAME", "")
    log_fields: dict[str, Any] = {"request_id": request_id, "endpoint": endpoint_name}
    try:
        if not endpoint_name:
            LOGGER.error(
                "configuration_error",
                extra={"fields": {**log_fields, "reason": "ENDPOINT_NAME is not set"}},
            )
            return _error(500, "The API is not configured.")
        try:
            kwargs = _parse_request(event or {})
        except RequestError as err:
            LOGGER.warning(
                "request_rejected",
                extra={"fields": {**log_fields, "status": err.status, "reason": err.message}},
            )
            return _error(err.status, err.message, err.headers)
        log_fields.update(content_type=kwargs["ContentType"], bytes=len(kwargs["Body"]))
        try:
            result, payload = _invoke(endpoint_name, kwargs, log_fields)
        except RequestError as err:
            return _error(err.status, err.message)
        return _answer(result, payload, log_fields)
    except Exception:  # the caller gets a generic 500, the log keeps the trace
        LOGGER.exception("unhandled_error", extra={"fields": log_fields})
        return _error(500, "Internal error.")
