"""Monitor window: which captured and ground-truth files a monitoring run reads.

Called by the monitor state machine with ``{"Input": <the execution's input>,
"ExecutionStartTime": <ISO time>}``. The window ends at the input's ``WindowEnd``, else its
``ScheduledTime`` (the EventBridge Scheduler's ``<aws.scheduler.scheduled-time>``), else
the execution's start, cut to the minute; it starts ``PERIOD_SECONDS`` earlier, or at the
input's ``WindowStart``. Step Functions cannot do date arithmetic in JSONPath, and a
window may cross midnight, a month or a year: this function lists the objects of every
UTC hour folder the window touches (data capture writes
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``, ground truth goes to
``<prefix>/yyyy/mm/dd/hh/``), writes them into SageMaker manifest files and returns the
processing job's inputs. The job filters records by their inference time itself; an
empty window is a normal outcome (a job with only the baseline as input).

When ground truth was uploaded in the window, capture folders back to
``LOOKBACK_HOURS`` before the window are listed too: labels arrive after their
predictions, and the job joins them by inference id.

Environment: ``CAPTURE_URI``, ``ENDPOINT_NAME``, ``VARIANT_NAME``, ``GROUND_TRUTH_URI``,
``MONITORING_URI`` (reports and manifests), ``STATISTICS_URI``, ``CONSTRAINTS_URI`` (the
baseline), ``PERIOD_SECONDS``, ``LOOKBACK_HOURS``. Returns::

    {"Start", "End", "Id" (yyyymmddHHMM of the end), "ReportUri", "ReportBucket",
     "MetricsKey", "Inputs" (ProcessingInputs), "CaptureFiles", "GroundTruthFiles"}

Manifest format: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html
(S3DataType ``ManifestFile``; the prefix and every key relative to it).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(
    connect_timeout=5,
    read_timeout=30,
    retries={"total_max_attempts": 5, "mode": "standard"},
)
#: Where the job finds each input (``mlcontainer.paths``: capture_dir, ground_truth_dir,
#: monitoring_baseline_dir).
LOCAL_PATHS = {
    "capture": "/opt/ml/processing/input/capture",
    "ground_truth": "/opt/ml/processing/input/ground_truth",
    "statistics": "/opt/ml/processing/baseline/statistics",
    "constraints": "/opt/ml/processing/baseline/constraints",
}
HOUR = timedelta(hours=1)


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


LOGGER = _make_logger("mlops.monitor_window")
S3 = boto3.client("s3", config=CLIENT_CONFIG)


class WindowError(ValueError):
    """A setting or an input the function cannot work with; the message says which."""


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise WindowError(f"environment variable {name} is not set")
    return value


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at its ends)."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise WindowError(f"not an s3://bucket/prefix URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (no zone: UTC)."""
    try:
        value = datetime.fromisoformat(str(text).strip())  # "Z" reads as UTC (Python 3.11+)
    except ValueError:
        raise WindowError(f"not an ISO 8601 time: {text!r}") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def window(event: dict[str, Any], period: timedelta) -> tuple[datetime, datetime]:
    """[start, end) of the run (see the module docstring)."""
    given = event.get("Input") if isinstance(event.get("Input"), dict) else {}
    end_text = given.get("WindowEnd") or given.get("ScheduledTime") or event.get("ExecutionStartTime")
    if not end_text:
        raise WindowError("no window end: the input has no WindowEnd or ScheduledTime, "
                          "and the event no ExecutionStartTime")
    end = parse_time(end_text).replace(second=0, microsecond=0)
    start = parse_time(given["WindowStart"]) if given.get("WindowStart") else end - period
    if start >= end:
        raise WindowError(f"the window starts ({start.isoformat()}) at or after it ends ({end.isoformat()})")
    return start, end


def hours(start: datetime, end: datetime) -> list[datetime]:
    """The UTC hours that overlap [start, end)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    found = []
    while hour < end:
        found.append(hour)
        hour += HOUR
    return found


def list_keys(bucket: str, prefix: str, folders: list[datetime]) -> list[str]:
    """Every object key under ``<prefix>/yyyy/mm/dd/hh/`` of each hour, sorted."""
    paginator = S3.get_paginator("list_objects_v2")
    keys: list[str] = []
    for hour in folders:
        folder = f"{prefix}/{hour:%Y/%m/%d/%H}/" if prefix else f"{hour:%Y/%m/%d/%H}/"
        for page in paginator.paginate(Bucket=bucket, Prefix=folder):
            keys += [obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/")]
    return sorted(keys)


def s3_input(name: str, uri: str, data_type: str = "S3Prefix") -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": LOCAL_PATHS[name],
            "S3DataType": data_type,
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def write_manifest(bucket: str, key: str, root_bucket: str, root: str, keys: list[str]) -> str:
    """Write a SageMaker manifest of ``keys`` (all under ``root``); its s3:// URI."""
    entries = [{"prefix": f"s3://{root_bucket}/{root}/" if root else f"s3://{root_bucket}/"}]
    entries += [k[len(root) + 1:] if root else k for k in keys]
    S3.put_object(Bucket=bucket, Key=key, Body=json.dumps(entries).encode("utf-8"),
                  ContentType="application/json")
    return f"s3://{bucket}/{key}"


def _settings() -> dict[str, Any]:
    try:
        period = timedelta(seconds=int(_env("PERIOD_SECONDS")))
        lookback = timedelta(hours=float(_env("LOOKBACK_HOURS")))
    except ValueError as err:
        raise WindowError(f"PERIOD_SECONDS and LOOKBACK_HOURS must be numbers ({err})") from None
    return {"period": period, "lookback": lookback, "endpoint": _env("ENDPOINT_NAME"),
            "variant": _env("VARIANT_NAME"), "capture": split_uri(_env("CAPTURE_URI")),
            "truth": split_uri(_env("GROUND_TRUTH_URI")), "reports": split_uri(_env("MONITORING_URI"))}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: list the window's files, write the manifests, return the inputs."""
    settings = _settings()
    start, end = window(event or {}, settings["period"])
    capture_bucket, capture_prefix = settings["capture"]
    capture_root = "/".join(p for p in (capture_prefix, settings["endpoint"], settings["variant"]) if p)
    truth_bucket, truth_prefix = settings["truth"]
    truth = list_keys(truth_bucket, truth_prefix, hours(start, end))
    # Labels arrive after their predictions: with labels, look further back for them.
    since = start - settings["lookback"] if truth else start
    captured = list_keys(capture_bucket, capture_root, hours(since, end))
    report_bucket, report_prefix = settings["reports"]
    run = "/".join(p for p in (report_prefix, settings["endpoint"], f"{end:%Y/%m/%d/%H%M}") if p)
    inputs = [s3_input("statistics", _env("STATISTICS_URI")), s3_input("constraints", _env("CONSTRAINTS_URI"))]
    if captured:
        uri = write_manifest(report_bucket, f"{run}/manifests/capture.manifest", capture_bucket,
                             capture_root, captured)
        inputs.insert(0, s3_input("capture", uri, "ManifestFile"))
    if truth:
        uri = write_manifest(report_bucket, f"{run}/manifests/ground-truth.manifest", truth_bucket,
                             truth_prefix, truth)
        inputs.insert(len(inputs) - 2, s3_input("ground_truth", uri, "ManifestFile"))
    result = {
        "Start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "End": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Id": f"{end:%Y%m%d%H%M}",
        "ReportUri": f"s3://{report_bucket}/{run}/",
        "ReportBucket": report_bucket,
        "MetricsKey": f"{run}/metrics.json",
        "Inputs": inputs,
        "CaptureFiles": len(captured),
        "GroundTruthFiles": len(truth),
    }
    LOGGER.info("window", extra={"fields": {k: v for k, v in result.items() if k != "Inputs"}})
    return result
