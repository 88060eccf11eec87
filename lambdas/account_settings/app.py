"""CloudFormation custom resource: the account's API Gateway CloudWatch Logs role.

API Gateway needs one role per account and region to write access and execution logs of
REST APIs (``UpdateAccount`` with ``/cloudwatchRoleArn``). Right after the role is
created, IAM has not yet propagated it and API Gateway answers "The role ARN does not
have required permissions ..." (a known race of ``AWS::ApiGateway::Account``): this
function retries that answer with backoff until the role is usable or its time runs out.

Event: a CloudFormation custom-resource request with ``ResourceProperties.CloudWatchRoleArn``.

* Create, Update: set the role (retrying propagation errors), report ``SUCCESS``.
* Delete: change nothing. The setting is account-wide and other APIs rely on it; the
  stack keeps the role (``DeletionPolicy: Retain``) so the setting never points at a
  deleted role.

Every path reports to CloudFormation (``FAILED`` with the reason on any error, before the
function's own timeout), so a stack never waits an hour for an answer.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PHYSICAL_ID = "apigateway-account-cloudwatch-role"
#: Messages API Gateway answers while the new role has not propagated.
PROPAGATION_MESSAGES = ("does not have required permissions", "unable to assume")
RETRYABLE_CODES = ("TooManyRequestsException", "ServiceUnavailableException")
#: Seconds kept back from the function's timeout to report to CloudFormation.
REPORT_MARGIN_SECONDS = 20
#: The report's PUT is tried twice, each try bounded: both fit in the margin, so a
#: transient failure is retried before Lambda ends the invocation (unanswered,
#: CloudFormation would wait an hour for the resource).
REPORT_ATTEMPTS = 2
REPORT_TIMEOUT_SECONDS = 9
MAX_BACKOFF_SECONDS = 30
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"total_max_attempts": 3, "mode": "standard"})


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


LOGGER = _make_logger("mlops.account_settings")
APIGATEWAY = boto3.client("apigateway", config=CLIENT_CONFIG)


def _propagating(err: ClientError) -> bool:
    error = err.response.get("Error", {})
    if error.get("Code") in RETRYABLE_CODES:
        return True
    message = error.get("Message", "").lower()
    return error.get("Code") == "BadRequestException" and any(m in message for m in PROPAGATION_MESSAGES)


def set_cloudwatch_role(role_arn: str, deadline: float) -> int:
    """Point API Gateway's account settings at ``role_arn``; return the attempts made.

    Retries IAM-propagation and throttling answers with backoff until ``deadline``
    (``time.monotonic()`` seconds); raises the last error after it.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            APIGATEWAY.update_account(
                patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
            )
            return attempt
        except ClientError as err:
            delay = min(MAX_BACKOFF_SECONDS, 2 ** attempt)
            if not _propagating(err) or time.monotonic() + delay > deadline:
                raise
            LOGGER.info(
                "role_not_usable_yet",
                extra={"fields": {"attempt": attempt, "retry_in_seconds": delay, "error": str(err)}},
            )
            time.sleep(delay)


def send(event: dict[str, Any], context: Any, status: str, reason: str = "", data: dict[str, Any] | None = None) -> None:
    """PUT the custom resource's outcome to CloudFormation's pre-signed ``ResponseURL``."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or f"See CloudWatch Logs stream {getattr(context, 'log_stream_name', '?')}")[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
            "StackId": event.get("StackId", ""),
            "RequestId": event.get("RequestId", ""),
            "LogicalResourceId": event.get("LogicalResourceId", ""),
            "NoEcho": False,
            "Data": data or {},
        }
    ).encode("utf-8")
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    for attempt in range(1, REPORT_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=REPORT_TIMEOUT_SECONDS) as response:
                LOGGER.info("reported", extra={"fields": {"status": status, "http_status": response.status}})
                return
        except OSError as err:  # urllib's URLError and HTTPError, timeouts, resets
            if attempt == REPORT_ATTEMPTS:
                raise
            LOGGER.warning("report_retry", extra={"fields": {"attempt": attempt, "error": str(err)}})


def handler(event: dict[str, Any], context: Any) -> None:
    """Lambda entry point (see the module docstring)."""
    request_type = event.get("RequestType")
    if "ResponseURL" not in event:
        LOGGER.error("invalid_event", extra={"fields": {"event_keys": sorted(event)}})
        raise ValueError("not a CloudFormation custom-resource request: no ResponseURL")
    try:
        if request_type == "Delete":
            LOGGER.info("delete_keeps_the_account_setting")
            send(event, context, "SUCCESS", "The account setting stays: other APIs rely on it")
            return
        if request_type not in ("Create", "Update"):
            raise ValueError(f"unknown RequestType {request_type!r}")
        role_arn = str(event.get("ResourceProperties", {}).get("CloudWatchRoleArn", "")).strip()
        if not role_arn.startswith("arn:"):
            raise ValueError(f"ResourceProperties.CloudWatchRoleArn must be a role ARN (got {role_arn!r})")
        remaining = context.get_remaining_time_in_millis() / 1000
        attempts = set_cloudwatch_role(role_arn, time.monotonic() + remaining - REPORT_MARGIN_SECONDS)
        LOGGER.info("role_set", extra={"fields": {"role_arn": role_arn, "attempts": attempts}})
        send(event, context, "SUCCESS", data={"CloudWatchRoleArn": role_arn})
    except (ClientError, BotoCoreError, ValueError, KeyError) as err:
        LOGGER.error("failed", extra={"fields": {"request_type": request_type, "error": str(err)}})
        send(event, context, "FAILED", f"{type(err).__name__}: {err}")
    except Exception as err:
        LOGGER.exception("unexpected_error")
        send(event, context, "FAILED", f"unexpected error: {type(err).__name__}: {err}")
