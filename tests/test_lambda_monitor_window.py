"""The monitor window function against moto's S3: which hour folders a window reads (across
midnight, a month, a year, for every allowed schedule and a window given by hand), the
manifests it writes and the processing job's inputs it returns; ground truth widens the
capture listing by the lookback; an empty window is no error."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .lambda_helpers import FakeContext, load_lambda, mocked_aws, reset_moto

BUCKET = "mlops-abalone-123456789012-us-east-1-art"
ENV = {
    "CAPTURE_URI": f"s3://{BUCKET}/data-capture",
    "ENDPOINT_NAME": "mlops-abalone-prd",
    "VARIANT_NAME": "AllTraffic",
    "GROUND_TRUTH_URI": f"s3://{BUCKET}/ground-truth",
    "MONITORING_URI": f"s3://{BUCKET}/monitoring",
    "STATISTICS_URI": f"s3://{BUCKET}/runs/r/a/baseline/statistics.json",
    "CONSTRAINTS_URI": f"s3://{BUCKET}/runs/r/a/baseline/constraints.json",
    "PERIOD_SECONDS": "3600",
    "LOOKBACK_HOURS": "24",
}
CAPTURE = "data-capture/mlops-abalone-prd/AllTraffic"


@pytest.fixture(scope="module")
def app() -> Iterator[ModuleType]:
    with mocked_aws(), pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        yield load_lambda("monitor_window")


@pytest.fixture
def s3(app: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Any:
    reset_moto()
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def put(s3: Any, key: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}\n")


def hour_key(root: str, when: str, name: str = "part.jsonl") -> str:
    return f"{root}/{when}/{name}"


def manifest(s3: Any, uri: str) -> list[Any]:
    bucket, key = uri[5:].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def inputs(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["InputName"]: i["S3Input"] for i in result["Inputs"]}


def test_an_hourly_window_crossing_midnight_reads_the_last_hour_of_the_day(app: ModuleType, s3: Any) -> None:
    for when in ("2023/12/31/22", "2023/12/31/23", "2024/01/01/00"):
        put(s3, hour_key(CAPTURE, when))
    result = app.handler({"Input": {"ScheduledTime": "2024-01-01T00:00:00Z"}}, FakeContext())
    assert (result["Start"], result["End"], result["Id"]) == (
        "2023-12-31T23:00:00Z", "2024-01-01T00:00:00Z", "202401010000")
    listed = manifest(s3, inputs(result)["capture"]["S3Uri"])
    assert listed == [{"prefix": f"s3://{BUCKET}/{CAPTURE}/"}, "2023/12/31/23/part.jsonl"]
    capture = inputs(result)["capture"]
    assert capture["S3DataType"] == "ManifestFile"
    assert capture["LocalPath"] == "/opt/ml/processing/input/capture"
    assert result["ReportUri"] == f"s3://{BUCKET}/monitoring/mlops-abalone-prd/2024/01/01/0000/"
    assert result["MetricsKey"] == "monitoring/mlops-abalone-prd/2024/01/01/0000/metrics.json"
    assert (result["CaptureFiles"], result["GroundTruthFiles"]) == (1, 0)


def test_a_daily_window_crossing_a_year_reads_the_24_hours_of_the_day_before(
    app: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERIOD_SECONDS", "86400")
    for hour in range(24):
        put(s3, hour_key(CAPTURE, f"2024/12/31/{hour:02d}"))
    put(s3, hour_key(CAPTURE, "2024/12/30/23"))
    put(s3, hour_key(CAPTURE, "2025/01/01/00"))
    result = app.handler({"Input": {"ScheduledTime": "2025-01-01T00:00:00Z"}}, FakeContext())
    assert (result["Start"], result["End"]) == ("2024-12-31T00:00:00Z", "2025-01-01T00:00:00Z")
    listed = manifest(s3, inputs(result)["capture"]["S3Uri"])[1:]
    assert listed == [f"2024/12/31/{hour:02d}/part.jsonl" for hour in range(24)]


def test_a_six_hourly_window_and_a_window_given_by_hand(
    app: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERIOD_SECONDS", "21600")
    for hour in range(12):
        put(s3, hour_key(CAPTURE, f"2024/03/01/{hour:02d}"))
    result = app.handler({"Input": {"ScheduledTime": "2024-03-01T06:00:00Z"}}, FakeContext())
    assert len(manifest(s3, inputs(result)["capture"]["S3Uri"])) == 1 + 6
    # By hand, not on the hour: the hours it touches; the job filters the records.
    result = app.handler({"Input": {"WindowEnd": "2024-03-01T10:37:12Z"}}, FakeContext())
    assert (result["Start"], result["End"]) == ("2024-03-01T04:37:00Z", "2024-03-01T10:37:00Z")
    listed = manifest(s3, inputs(result)["capture"]["S3Uri"])[1:]
    assert listed == [f"2024/03/01/{hour:02d}/part.jsonl" for hour in range(4, 11)]
    result = app.handler({"Input": {"WindowStart": "2024-03-01T09:00:00Z",
                                    "WindowEnd": "2024-03-01T10:00:00Z"}}, FakeContext())
    assert manifest(s3, inputs(result)["capture"]["S3Uri"])[1:] == ["2024/03/01/09/part.jsonl"]


def test_without_a_time_in_the_input_the_execution_start_ends_the_window(app: ModuleType, s3: Any) -> None:
    result = app.handler({"Input": {}, "ExecutionStartTime": "2024-05-01T10:00:42.123Z"}, FakeContext())
    assert result["End"] == "2024-05-01T10:00:00Z"


def test_ground_truth_widens_the_capture_listing_by_the_lookback(app: ModuleType, s3: Any) -> None:
    put(s3, hour_key(CAPTURE, "2024/05/01/09"))
    put(s3, hour_key(CAPTURE, "2024/04/30/10"))  # 23 hours before the window
    put(s3, hour_key(CAPTURE, "2024/04/29/09"))  # older than the lookback
    event = {"Input": {"ScheduledTime": "2024-05-01T10:00:00Z"}}
    without = app.handler(event, FakeContext())
    assert manifest(s3, inputs(without)["capture"]["S3Uri"])[1:] == ["2024/05/01/09/part.jsonl"]
    put(s3, "ground-truth/2024/05/01/09/labels.jsonl")
    put(s3, "ground-truth/2024/05/01/10/later.jsonl")  # collected after the window
    result = app.handler(event, FakeContext())
    truth = inputs(result)["ground_truth"]
    assert truth["LocalPath"] == "/opt/ml/processing/input/ground_truth"
    assert manifest(s3, truth["S3Uri"]) == [{"prefix": f"s3://{BUCKET}/ground-truth/"},
                                            "2024/05/01/09/labels.jsonl"]
    assert manifest(s3, inputs(result)["capture"]["S3Uri"])[1:] == [
        "2024/04/30/10/part.jsonl", "2024/05/01/09/part.jsonl"]
    assert [i["InputName"] for i in result["Inputs"]] == ["capture", "ground_truth", "statistics", "constraints"]


def test_an_empty_window_is_a_normal_outcome(app: ModuleType, s3: Any) -> None:
    result = app.handler({"Input": {"ScheduledTime": "2024-05-01T10:00:00Z"}}, FakeContext())
    assert (result["CaptureFiles"], result["GroundTruthFiles"]) == (0, 0)
    # Only the baseline: the job then reports zero rows, no drift.
    assert inputs(result) == {
        "statistics": {"S3Uri": ENV["STATISTICS_URI"], "LocalPath": "/opt/ml/processing/baseline/statistics",
                       "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
        "constraints": {"S3Uri": ENV["CONSTRAINTS_URI"], "LocalPath": "/opt/ml/processing/baseline/constraints",
                        "S3DataType": "S3Prefix", "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
    }
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="monitoring/")


def test_the_inputs_are_valid_processing_inputs(app: ModuleType, s3: Any) -> None:
    """What the state machine passes to CreateProcessingJob, checked against its model."""
    from botocore.validate import validate_parameters

    put(s3, hour_key(CAPTURE, "2024/05/01/09"))
    put(s3, "ground-truth/2024/05/01/09/labels.jsonl")
    result = app.handler({"Input": {"ScheduledTime": "2024-05-01T10:00:00Z"}}, FakeContext())
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    shape = sagemaker.meta.service_model.operation_model("CreateProcessingJob").input_shape
    validate_parameters({
        "ProcessingJobName": "mlops-abalone-mon-202405011000-5f2c9a1e-0",
        "ProcessingInputs": result["Inputs"],
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                  "VolumeSizeInGB": 20}},
        "AppSpecification": {"ImageUri": "image"},
        "RoleArn": "arn:aws:iam::123456789012:role/mlops-abalone-sagemaker",
    }, shape)


@pytest.mark.parametrize(
    ("env", "event", "message"),
    [
        ({"PERIOD_SECONDS": "hourly"}, {"Input": {"ScheduledTime": "2024-05-01T10:00:00Z"}}, "PERIOD_SECONDS"),
        ({"CAPTURE_URI": "bucket/prefix"}, {"Input": {"ScheduledTime": "2024-05-01T10:00:00Z"}}, "s3://"),
        ({}, {"Input": {"ScheduledTime": "yesterday"}}, "ISO 8601"),
        ({}, {"Input": {}}, "no window end"),
        ({}, {"Input": {"WindowStart": "2024-05-01T11:00:00Z", "WindowEnd": "2024-05-01T10:00:00Z"}},
         "at or after it ends"),
    ],
)
def test_bad_settings_and_inputs_fail_with_the_reason(
    app: ModuleType, s3: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
    event: dict[str, Any], message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(app.WindowError, match=message):
        app.handler(event, FakeContext())


@settings(max_examples=200, deadline=None)
@given(
    end=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    period=st.sampled_from([3600, 21600, 86400]),
)
def test_the_listed_hours_are_exactly_those_the_window_touches(end: datetime, period: int) -> None:
    app = load_lambda("monitor_window") if "monitor_window" not in _cache else _cache["monitor_window"]
    _cache["monitor_window"] = app
    end = end.replace(tzinfo=UTC, second=0, microsecond=0)
    start = end - timedelta(seconds=period)
    hours = app.hours(start, end)
    assert hours[0] <= start < hours[0] + timedelta(hours=1)
    assert hours[-1] < end <= hours[-1] + timedelta(hours=1)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(hours))


_cache: dict[str, ModuleType] = {}
