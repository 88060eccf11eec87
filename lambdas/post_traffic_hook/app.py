"""CodeDeploy PostTraffic hook: checks that the production endpoint still captures requests.

Event: ``{"DeploymentId": ..., "LifecycleEventHookExecutionId": ...}``. Environment:

``ENDPOINT_NAME``
    The SageMaker endpoint behind the API.
``DATA_CAPTURE_URI``
    The endpoint's capture destination, ``s3://bucket/prefix``.
``MAX_WAIT_SECONDS``
    How long to wait for a capture file, 240 by default; it must stay below the
    function timeout (the hook also stops early enough to report before that timeout).
``SAMPLE_CSV``
    Optional raw feature row sent once as ``text/csv``, so a capture file appears even
    without client traffic.

SageMaker writes captured requests to
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``; the drift monitor reads nothing
else. The hook polls for a ``.jsonl`` object written after the deployment started (after
the last hour when the deployment's start time cannot be read) and reports
``Succeeded`` or ``Failed`` to CodeDeploy with ``PutLifecycleEventHookExecutionStatus`` on
every path; a failed report fails the invocation.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

SUCCEEDED = "Succeeded"
FAILED = "Failed"
DEFAULT_MAX_WAIT_SECONDS = 240
POLL_INTERVAL_SECONDS = 15
# Time kept back from the function timeout to send the report to CodeDeploy.
REPORT_MARGIN_SECONDS = 20
LOOKBACK = timedelta(hours=1)
CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=20,
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


LOGGER = _make_logger("mlops.post_traffic_hook")
S3 = boto3.client("s3", config=CLIENT_CONFIG)
RUNTIME = boto3.client("sagemaker-runtime", config=CLIENT_CONFIG)
CODEDEPLOY = boto3.client("codedeploy", config=CLIENT_CONFIG)
#: Inference ids of requests the deployment tooling sends (not live traffic).
SYNTHETIC_PREFIX = "synthetic-"


def _clock() -> float:
    """Seconds since the epoch; replaced in tests."""
    return time.time()


def _sleep(seconds: float) -> None:
    """Wait between polls; replaced in tests."""
    time.sleep(seconds)


class CheckFailed(Exception):
    """A check that did not pass; the message is the reason reported in the logs."""


def _required_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise CheckFailed(f"environment variable {name} is not set")
    return value


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/prefix`` into the bucket and the prefix without slashes at its ends."""
    if not uri.startswith("s3://"):
        raise CheckFailed(f"DATA_CAPTURE_URI must start with s3:// (got {uri!r})")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise CheckFailed(f"DATA_CAPTURE_URI has no bucket (got {uri!r})")
    return bucket, prefix.strip("/")


def max_wait_seconds(context: Any) -> float:
    """``MAX_WAIT_SECONDS``, shortened so the report is sent before the function times out."""
    raw = os.environ.get("MAX_WAIT_SECONDS", "").strip() or str(DEFAULT_MAX_WAIT_SECONDS)
    try:
        wait = int(raw)
    except ValueError:
        raise CheckFailed(
            f"MAX_WAIT_SECONDS must be a whole number of seconds (got {raw!r})"
        ) from None
    if wait < 0:
        raise CheckFailed(f"MAX_WAIT_SECONDS must not be negative (got {wait})")
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining_ms):
        allowed = max(0.0, remaining_ms() / 1000 - REPORT_MARGIN_SECONDS)
        if wait > allowed:
            LOGGER.warning(
                "wait_shortened",
                extra={"fields": {"max_wait_seconds": wait, "allowed_seconds": allowed}},
            )
            return allowed
    return float(wait)


def deployment_start(deployment_id: str) -> datetime:
    """When the CodeDeploy deployment was created; an hour ago when that cannot be read."""
    try:
        info = CODEDEPLOY.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        created = info["createTime"]
        return created if created.tzinfo else created.replace(tzinfo=UTC)
    except (ClientError, BotoCoreError, KeyError) as err:
        since = datetime.fromtimestamp(_clock(), UTC) - LOOKBACK
        LOGGER.warning(
            "deployment_start_unknown",
            extra={"fields": {"deployment_id": deployment_id, "since": since, "error": str(err)}},
        )
        return since


def send_sample(endpoint_name: str, sample_csv: str, inference_id: str) -> None:
    """Invoke the endpoint once, so that a capture file is written. The inference id
    marks the request as synthetic: the monitor leaves it out of live data."""
    try:
        RUNTIME.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType="text/csv",
            Body=sample_csv.encode("utf-8"),
            InferenceId=inference_id,
        )["Body"].read()
    except ClientError as err:
        # botocore's message names the error code: "An error occurred (ModelError) ...".
        raise CheckFailed(f"sample request failed: {err}") from err


def find_capture(bucket: str, prefix: str, endpoint_name: str, since: datetime) -> str | None:
    """Key of a capture ``.jsonl`` object written at or after ``since``, else ``None``."""
    # S3 listings give LastModified to the second: compare at that precision.
    since = since.replace(microsecond=0)
    base = f"{prefix}/{endpoint_name}/" if prefix else f"{endpoint_name}/"
    paginator = S3.get_paginator("list_objects_v2")
    variants = [
        common["Prefix"]
        for page in paginator.paginate(Bucket=bucket, Prefix=base, Delimiter="/")
        for common in page.get("CommonPrefixes", [])
    ]
    for variant in variants:
        # Partitions are named by UTC hour: older hours sort before this key and are skipped.
        start_after = f"{variant}{since:%Y/%m/%d/%H}/"
        for page in paginator.paginate(Bucket=bucket, Prefix=variant, StartAfter=start_after):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".jsonl") and obj["LastModified"] >= since:
                    return obj["Key"]
    return None


def run_checks(deployment_id: str, context: Any) -> str:
    """Wait for a capture file; return a summary, or raise ``CheckFailed`` with the reason."""
    endpoint_name = _required_env("ENDPOINT_NAME")
    bucket, prefix = parse_s3_uri(_required_env("DATA_CAPTURE_URI"))
    budget = max_wait_seconds(context)
    started = _clock()
    since = deployment_start(deployment_id).astimezone(UTC)
    sample_csv = os.environ.get("SAMPLE_CSV", "").strip()
    if sample_csv:
        send_sample(endpoint_name, sample_csv, f"{SYNTHETIC_PREFIX}post-traffic-{deployment_id}"[:64])
    location = f"s3://{bucket}/{prefix + '/' if prefix else ''}{endpoint_name}/"
    polls = 0
    while True:
        polls += 1
        key = find_capture(bucket, prefix, endpoint_name, since)
        if key:
            return f"capture file s3://{bucket}/{key} found after {polls} poll(s)"
        remaining = budget - (_clock() - started)
        if remaining <= 0:
            raise CheckFailed(
                f"no capture file under {location} written since {since.isoformat()} "
                f"within {budget:.0f} s ({polls} poll(s))"
            )
        _sleep(min(POLL_INTERVAL_SECONDS, remaining))


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
    """Lambda entry point: wait for captured data, report the result, return it."""
    event = event or {}
    deployment_id = event.get("DeploymentId")
    execution_id = event.get("LifecycleEventHookExecutionId")
    if not deployment_id or not execution_id:
        # Nothing to report to: fail the invocation so the error is visible.
        LOGGER.error("invalid_event", extra={"fields": {"event_keys": sorted(event)}})
        raise ValueError("event needs DeploymentId and LifecycleEventHookExecutionId")
    fields = {"deployment_id": deployment_id, "endpoint": os.environ.get("ENDPOINT_NAME")}
    try:
        reason = run_checks(deployment_id, context)
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
