"""CodeDeploy PreTraffic hook: checks the production endpoint before the API shifts traffic.

Event: ``{"DeploymentId": ..., "LifecycleEventHookExecutionId": ...}``. Environment:

``ENDPOINT_NAME``
    The SageMaker endpoint the new API version will call.
``SAMPLE_CSV``
    One raw feature row without the label, sent as ``text/csv``.
``API_FUNCTION_VERSION``
    ARN of the API function version being deployed (SAM's ``<Function>.Version``).

Checks that the endpoint is ``InService``, that data capture is enabled (the drift
monitor reads the captured requests) and that the sample request answers a number (or a
list of numbers); then invokes **the new API function version** with the same row as an
API Gateway request and checks that it answers 200 with a prediction, so a broken API
version never receives traffic. The hook's requests carry the inference id
``synthetic-pre-traffic-<deployment>``: the monitor leaves synthetic traffic out. The
outcome is reported to CodeDeploy with
``PutLifecycleEventHookExecutionStatus`` on every path, unexpected errors included, so a
deployment never waits for the hook's timeout; a failed report fails the invocation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

SUCCEEDED = "Succeeded"
FAILED = "Failed"
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"total_max_attempts": 3, "mode": "standard"},
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


LOGGER = _make_logger("mlops.pre_traffic_hook")
SAGEMAKER = boto3.client("sagemaker", config=CLIENT_CONFIG)
RUNTIME = boto3.client("sagemaker-runtime", config=CLIENT_CONFIG)
CODEDEPLOY = boto3.client("codedeploy", config=CLIENT_CONFIG)
LAMBDA = boto3.client("lambda", config=CLIENT_CONFIG)
#: Inference ids of requests the deployment tooling sends (not live traffic).
SYNTHETIC_PREFIX = "synthetic-"


class CheckFailed(Exception):
    """A check that did not pass; the message is the reason reported in the logs."""


def _required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise CheckFailed(f"environment variable {name} is not set")
    return value


def parse_prediction(body: bytes) -> list[float]:
    """Return the predictions in ``body``: a number, a JSON list of numbers, or CSV.

    A JSON object with a ``predictions`` list is accepted too. Raises ``ValueError`` when
    the body holds anything else, or a value that is not finite.
    """
    text = body.decode("utf-8").strip()
    if not text:
        raise ValueError("empty response")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        # CSV or line-separated numbers, e.g. "9.87" or "9.87\n10.1".
        parsed = [float(item) for item in re.split(r"[,\s]+", text) if item]
    if isinstance(parsed, dict) and "predictions" in parsed:
        parsed = parsed["predictions"]
    values = parsed if isinstance(parsed, list) else [parsed]
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    if not flat:
        raise ValueError("no prediction in the response")
    numbers = []
    for value in flat:
        # bool is an int subclass, but "true" is no prediction.
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        numbers.append(float(value))
    return numbers


def check_endpoint(endpoint_name: str) -> dict[str, Any]:
    """Check that the endpoint is InService with data capture enabled; return its description."""
    try:
        description = SAGEMAKER.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as err:
        if "could not find" in err.response.get("Error", {}).get("Message", "").lower():
            raise CheckFailed(f"endpoint {endpoint_name} not found") from err
        raise
    status = description.get("EndpointStatus")
    if status != "InService":
        reason = description.get("FailureReason")
        raise CheckFailed(
            f"endpoint {endpoint_name} is {status}, not InService"
            + (f": {reason}" if reason else "")
        )
    capture = description.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture"):
        raise CheckFailed(f"data capture is not enabled on endpoint {endpoint_name}")
    return description


def check_sample(endpoint_name: str, sample_csv: str, inference_id: str) -> list[float]:
    """Send the sample row and check that the endpoint answers a number."""
    try:
        result = RUNTIME.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="text/csv",
            Body=sample_csv.encode("utf-8"),
            InferenceId=inference_id,
        )
        body = result["Body"].read()
    except ClientError as err:
        # botocore's message names the error code: "An error occurred (ModelError) ...".
        raise CheckFailed(f"sample request failed: {err}") from err
    try:
        return parse_prediction(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckFailed(f"sample request returned no number ({err}): {body[:200]!r}") from err


def api_request(sample_csv: str, inference_id: str) -> dict[str, Any]:
    """The API Gateway proxy event of a ``POST /predict`` of the sample row."""
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {
            "Content-Type": "text/csv",
            "Accept": "text/csv",
            "X-Amzn-SageMaker-Inference-Id": inference_id,
        },
        "body": sample_csv,
        "isBase64Encoded": False,
        "requestContext": {"stage": "pre-traffic-hook", "httpMethod": "POST", "path": "/predict"},
    }


def check_api_version(version_arn: str, sample_csv: str, inference_id: str) -> list[float]:
    """Invoke the API function version being deployed with the sample as an API request;
    check that it answers 200 with a prediction."""
    try:
        result = LAMBDA.invoke(
            FunctionName=version_arn,
            InvocationType="RequestResponse",
            Payload=json.dumps(api_request(sample_csv, inference_id)).encode("utf-8"),
        )
        payload = result["Payload"].read()
    except ClientError as err:
        raise CheckFailed(f"invoking the new API version {version_arn} failed: {err}") from err
    text = payload.decode("utf-8", "replace")[:300]
    if result.get("FunctionError"):
        raise CheckFailed(f"the new API version {version_arn} raised an error: {text}")
    try:
        response = json.loads(payload)
    except ValueError as err:
        raise CheckFailed(f"the new API version answered no JSON ({err}): {text}") from err
    status = response.get("statusCode") if isinstance(response, dict) else None
    if status != 200:
        raise CheckFailed(f"the new API version answered {status} to the sample request: {text}")
    try:
        return parse_prediction(str(response.get("body", "")).encode("utf-8"))
    except ValueError as err:
        raise CheckFailed(f"the new API version answered no prediction ({err}): {text}") from err


def run_checks(deployment_id: str = "") -> str:
    """Run every check; return a summary, or raise ``CheckFailed`` with the reason."""
    endpoint_name = _required_env("ENDPOINT_NAME")
    sample_csv = _required_env("SAMPLE_CSV")
    version_arn = _required_env("API_FUNCTION_VERSION")
    inference_id = f"{SYNTHETIC_PREFIX}pre-traffic-{deployment_id}"[:64]
    check_endpoint(endpoint_name)
    predictions = check_sample(endpoint_name, sample_csv, inference_id)
    through_api = check_api_version(version_arn, sample_csv, inference_id)
    return (
        f"endpoint {endpoint_name} is InService, captures data and predicted {predictions[:5]}; "
        f"the new API version {version_arn} answered {through_api[:5]}"
    )


def report(deployment_id: str, execution_id: str, status: str) -> None:
    """Tell CodeDeploy the hook's outcome; log and re-raise when that call fails."""
    try:
        CODEDEPLOY.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=execution_id,
            status=status,
        )
    except (ClientError, BotoCoreError) as err:
        LOGGER.error(
            "report_failed",
            extra={"fields": {"deployment_id": deployment_id, "status": status, "error": str(err)}},
        )
        raise


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Lambda entry point: run the checks, report the result, return it."""
    event = event or {}
    deployment_id = event.get("DeploymentId")
    execution_id = event.get("LifecycleEventHookExecutionId")
    if not deployment_id or not execution_id:
        # Nothing to report to: fail the invocation so the error is visible.
        LOGGER.error("invalid_event", extra={"fields": {"event_keys": sorted(event)}})
        raise ValueError("event needs DeploymentId and LifecycleEventHookExecutionId")
    fields = {"deployment_id": deployment_id, "endpoint": os.environ.get("ENDPOINT_NAME")}
    try:
        reason = run_checks(deployment_id)
        status = SUCCEEDED
        LOGGER.info("checks_passed", extra={"fields": {**fields, "reason": reason}})
    except CheckFailed as err:
        status, reason = FAILED, str(err)
        LOGGER.warning("check_failed", extra={"fields": {**fields, "reason": reason}})
    except Exception as err:  # any error must still answer CodeDeploy
        status, reason = FAILED, f"unexpected error: {type(err).__name__}: {err}"
        LOGGER.exception("check_error", extra={"fields": {**fields, "reason": reason}})
    report(deployment_id, execution_id, status)
    return {"status": status, "reason": reason}
