"""The ``monitor`` job in-process: captured records with known drift and known labels, checked
against values computed here independently (SciPy's Jensen-Shannon distance over the
baseline's bins, binned by a plain loop; RMSE, MAE and R² by their definitions); the
window, the synthetic requests, the lookback of the ground-truth join, empty and small
windows, request shapes, the CloudWatch request it writes and the self-contained report.
"""

from __future__ import annotations

import base64
import json
import math
import re
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "container"))

from mlcontainer import (
    analysis,
    baseline,
    capture,
    checks,
    monitor,
    report_html,
    schema,
)
from mlcontainer.errors import UserError

START = datetime(2024, 5, 1, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
SETTINGS = monitor.Settings(endpoint="mlops-abalone-prd", namespace="mlops/abalone",
                            drift_threshold=0.1, drift_min_rows=500, quality_min_rows=30)
#: The known drift: these features are scaled in the live traffic, the others are not.
DRIFT = {"length": 1.3, "whole_weight": 1.6, "shell_weight": 0.5}
N_LIVE = 3000


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rows() -> schema.Rows:
    return schema.parse_csv((REPO / "container/data/abalone.csv").read_text(), label="required",
                            keep_fields=True)


@pytest.fixture(scope="module")
def base_dir(rows: schema.Rows, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline of the first 2,500 rows, with a known prediction distribution."""
    train = rows.take(np.arange(2500))
    statistics, constraints = baseline.feature_baseline(train)
    predictions = train.label * 0.8 + 2.0  # a model that shrinks towards the mean
    directory = tmp_path_factory.mktemp("baseline")
    # As SageMaker places the two inputs: a folder each.
    baseline.write(directory / "statistics", baseline.with_predictions(statistics, predictions), constraints)
    (directory / "constraints").mkdir()
    (directory / "statistics" / baseline.CONSTRAINTS).rename(directory / "constraints" / baseline.CONSTRAINTS)
    return directory


def live_fields(rows: schema.Rows) -> list[list[str]]:
    """N_LIVE rows of the data (cycled from row 2500 on), with DRIFT applied."""
    out = []
    for i in range(N_LIVE):
        fields = list(rows.fields[2500 + i % (len(rows) - 2500)][:8])
        for j, name in enumerate(schema.FEATURES):
            if name in DRIFT:
                fields[j] = repr(float(fields[j]) * DRIFT[name])
        out.append(fields)
    return out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture(scope="module")
def traffic(rows: schema.Rows, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Capture and ground-truth files of a window with known content:

    * N_LIVE live requests in the window, features drifted by DRIFT, a known prediction
      each (label - 1.5 for even rows, label + 2.5 for odd ones), labelled for every third;
    * 40 synthetic requests (absurd values) and 30 requests after the window, never counted;
    * 20 requests two hours before the window (in the lookback) whose labels arrive now,
      and 10 labelled requests 30 hours before (older than the lookback: not joined);
    * 5 rows with a missing, 4 with an invalid and 3 with an out-of-range length.
    """
    root = tmp_path_factory.mktemp("traffic")
    fields = live_fields(rows)
    fields[0][1] = ""                      # missing
    for i in range(1, 5):
        fields[i][1] = ["", "abc", "-1", "nan", "inf"][i]  # invalid
    fields[5][1] = ""
    fields[6][1] = ""
    fields[7][1] = ""
    fields[8][1] = ""
    for i in range(9, 12):
        fields[i][1] = "5.0"               # out of range: far above the training maximum
    labels = [float(rows.label[2500 + i % (len(rows) - 2500)]) for i in range(N_LIVE)]
    predicted = [y - 1.5 if i % 2 == 0 else y + 2.5 for i, y in enumerate(labels)]
    step = timedelta(seconds=3600 / N_LIVE)
    records, truth = [], []
    for i, (row, answer) in enumerate(zip(fields, predicted)):
        key = f"live-{i}"
        records.append(capture.capture_record(",".join(row), f"{answer!r}\n", START + i * step, f"e{i}", key))
        if i % 3 == 0:
            truth.append(capture.ground_truth_record([labels[i]], key))
    absurd = "I,9,9,9,99,99,99,99"
    for i in range(40):
        records.append(capture.capture_record(absurd, "99\n", START + timedelta(minutes=i),
                                              f"s{i}", f"synthetic-test-{i}"))
    for i in range(30):
        records.append(capture.capture_record(absurd, "99\n", END + timedelta(seconds=i), f"a{i}", f"after-{i}"))
    for i in range(20):  # in the lookback: joined, not part of the data-quality window
        records.append(capture.capture_record(",".join(fields[100]), "10.0\n", START - timedelta(hours=2),
                                              f"b{i}", f"before-{i}"))
        truth.append(capture.ground_truth_record([12.0], f"before-{i}"))
    for i in range(10):  # older than the lookback: never joined
        records.append(capture.capture_record(",".join(fields[100]), "10.0\n", START - timedelta(hours=30),
                                              f"o{i}", f"old-{i}"))
        truth.append(capture.ground_truth_record([50.0], f"old-{i}"))
    write_jsonl(capture.capture_path(root / "capture", "ep", START, "a.jsonl"), records[: len(records) // 2])
    write_jsonl(capture.capture_path(root / "capture", "ep", END, "b.jsonl"), records[len(records) // 2:])
    write_jsonl(capture.hour_path(root / "truth", START, "labels.jsonl"), truth)
    joined = [(labels[i], predicted[i]) for i in range(0, N_LIVE, 3)] + [(12.0, 10.0)] * 20
    return {"root": root, "fields": fields, "predictions": predicted, "joined": joined}


@pytest.fixture(scope="module")
def report(traffic: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    root = traffic["root"]
    window = analysis.window_of(START.isoformat(), END.isoformat(), timedelta(hours=24))
    return monitor.run(root / "capture", root / "truth", base_dir, root / "out", window, SETTINGS)


# ---------------------------------------------------------------- independent values


def independent_bins(edges: list[float], values: list[float]) -> list[int]:
    """Counts per bin, by a plain loop: a value's bin is the number of interior edges at or
    below it (outer bins open)."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        counts[sum(1 for edge in edges[1:-1] if value >= edge)] += 1
    return counts


def valid_numbers(column: list[str]) -> list[float]:
    out = []
    for text in column:
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            out.append(value)
    return out


# ------------------------------------------------------------------------------ tests


def test_drift_distances_and_flags_match_scipy(report: dict[str, Any], traffic: dict[str, Any],
                                               base_dir: Path) -> None:
    statistics = json.loads((base_dir / "statistics" / "statistics.json").read_text())["features"]
    columns = list(zip(*traffic["fields"]))
    for j, name in enumerate(schema.FEATURES):
        spec, result = statistics[name], report["features"][name]
        if spec["type"] == "categorical":
            live = [sum(1 for v in columns[j] if v == c) for c in spec["categories"]]
        else:
            live = independent_bins(spec["edges"], valid_numbers(list(columns[j])))
        expected = float(jensenshannon(spec["counts"], live, base=2))
        assert result["distance"] == pytest.approx(expected, abs=1e-9), name
        assert result["drifted"] is (expected > SETTINGS.drift_threshold), name
        # The known drift is found, and only there.
        assert result["drifted"] is (name in DRIFT), (name, expected)
    assert sorted(report["drift"]["drifted"]) == sorted(DRIFT)
    assert report["drift"]["count"] == len(DRIFT) and report["drift"]["judged"] is True
    assert report["alarms"]["drift"]["breaching"] is True


def test_prediction_drift_matches_scipy(report: dict[str, Any], traffic: dict[str, Any], base_dir: Path) -> None:
    spec = json.loads((base_dir / "statistics" / "statistics.json").read_text())["prediction"]
    live = independent_bins(spec["edges"], traffic["predictions"])
    assert report["prediction"]["distance"] == pytest.approx(
        float(jensenshannon(spec["counts"], live, base=2)), abs=1e-9)
    assert report["prediction"]["rows"] == N_LIVE


def expected_out_of_range(base_dir: Path, traffic: dict[str, Any]) -> dict[str, int]:
    """Valid values outside the train split's [min, max], counted here."""
    limits = json.loads((base_dir / "constraints" / "constraints.json").read_text())["features"]
    columns = dict(zip(schema.FEATURES, zip(*traffic["fields"])))
    return {
        name: sum(1 for v in valid_numbers(list(columns[name])) if not limits[name]["min"] <= v <= limits[name]["max"])
        for name in schema.NUMERIC
    }


def test_missing_invalid_and_out_of_range_values_are_counted(
    report: dict[str, Any], traffic: dict[str, Any], base_dir: Path
) -> None:
    length = report["features"]["length"]
    assert (length["missing"], length["invalid"]) == (5, 4)
    assert length["valid"] == N_LIVE - 9
    outside = expected_out_of_range(base_dir, traffic)
    assert outside["length"] >= 3  # the three injected, and what the drift pushed out
    for name in schema.NUMERIC:
        assert report["features"][name]["out_of_range"] == outside[name], name
    for name in ("sex", "height", "diameter"):
        feature = report["features"][name]
        assert (feature["missing"], feature["invalid"], feature["out_of_range"]) == (0, 0, 0), name


def test_model_quality_over_the_joined_rows_matches_the_definitions(
    report: dict[str, Any], traffic: dict[str, Any]
) -> None:
    pairs = traffic["joined"]
    n = len(pairs)
    errors = [p - y for y, p in pairs]
    mean = sum(y for y, _ in pairs) / n
    quality = report["model_quality"]
    assert quality["rows"] == n == N_LIVE // 3 + 20
    assert quality["rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errors) / n), rel=1e-12)
    assert quality["mae"] == pytest.approx(sum(abs(e) for e in errors) / n, rel=1e-12)
    assert quality["r2"] == pytest.approx(
        1 - sum(e * e for e in errors) / sum((y - mean) ** 2 for y, _ in pairs), rel=1e-12)
    assert quality["unmatched"] == 10  # the labels of predictions older than the lookback
    assert quality["judged"] is True
    assert report["alarms"]["quality"]["breaching"] is (quality["rmse"] > SETTINGS.quality_threshold)


def test_only_live_records_of_the_window_count(report: dict[str, Any]) -> None:
    records = report["records"]
    assert records["records"] == records["rows"] == N_LIVE
    assert records["synthetic"] == 40
    # After the window, two hours before (the lookback) and 30 hours before.
    assert records["outside_window"] == 30 + 10
    assert records["unreadable"] == records["malformed_rows"] == records["failed_answers"] == 0


def test_metrics_json_is_a_valid_put_metric_data_request(
    report: dict[str, Any], traffic: dict[str, Any], base_dir: Path
) -> None:
    import boto3
    from botocore.validate import validate_parameters

    from mlops_templates import contract

    body = json.loads((traffic["root"] / "out" / "metrics.json").read_text())
    shape = boto3.client("cloudwatch", region_name="us-east-1").meta.service_model.operation_model(
        "PutMetricData").input_shape
    validate_parameters(body, shape)
    assert body["Namespace"] == "mlops/abalone"
    data = body["MetricData"]
    assert 0 < len(data) <= 1000 and len(json.dumps(body)) < 1_000_000  # the API's limits
    assert {d["MetricName"] for d in data} <= set(contract.MONITOR_METRICS)
    for datum in data:
        assert math.isfinite(datum["Value"]), datum
        assert {"Name": "EndpointName", "Value": "mlops-abalone-prd"} in datum["Dimensions"]
    by_name = {d["MetricName"]: d["Value"] for d in data if d["MetricName"] != "FeatureDrift"}
    assert by_name["FeaturesDrifted"] == len(DRIFT)
    assert by_name["MonitorFailed"] == 0
    assert by_name["RMSE"] == pytest.approx(report["model_quality"]["rmse"], abs=1e-6)
    assert by_name["MissingValues"] == 5 and by_name["InvalidValues"] == 4
    assert by_name["OutOfRangeValues"] == sum(expected_out_of_range(base_dir, traffic).values())
    features = {d["Dimensions"][1]["Value"]: d["Value"] for d in data if d["MetricName"] == "FeatureDrift"}
    assert set(features) == set(schema.FEATURES)


def test_the_container_and_the_stack_agree_on_names() -> None:
    from mlops_templates import contract, naming
    from mlops_templates.config import parse
    from mlops_templates.stacks.deploy_prd import monitor_definition

    assert tuple(monitor.METRICS) == contract.MONITOR_METRICS
    assert monitor.QUALITY_METRICS == contract.QUALITY_METRIC_NAMES
    assert monitor.Settings().synthetic_prefix == contract.SYNTHETIC_INFERENCE_ID_PREFIX
    assert capture.SYNTHETIC_PREFIX == contract.SYNTHETIC_INFERENCE_ID_PREFIX
    environment = monitor_definition.job_environment(parse({}), "ep")
    # The endpoint's job reads data capture, INPUT_FORMAT's default; a batch's sets it.
    assert set(environment) == {env for env, _, _ in monitor.OPTIONS.values()} - {"INPUT_FORMAT"}
    assert monitor.Settings().input_format == "capture"
    assert environment["SYNTHETIC_PREFIX"] == contract.SYNTHETIC_INFERENCE_ID_PREFIX
    assert environment["METRICS_NAMESPACE"] == naming.metrics_namespace(parse({}))
    for hook in ("pre_traffic_hook", "post_traffic_hook"):
        text = (REPO / "lambdas" / hook / "app.py").read_text()
        assert f'SYNTHETIC_PREFIX = "{contract.SYNTHETIC_INFERENCE_ID_PREFIX}"' in text, hook


def test_an_empty_window_reports_zero_and_no_drift(base_dir: Path, tmp_path: Path) -> None:
    window = analysis.window_of(START.isoformat(), END.isoformat(), timedelta(hours=24))
    empty = monitor.run(tmp_path / "none", tmp_path / "none", base_dir, tmp_path / "out", window, SETTINGS)
    assert empty["records"]["records"] == empty["records"]["rows"] == 0
    assert empty["drift"] == {**empty["drift"], "judged": False, "count": 0, "drifted": []}
    assert empty["model_quality"]["rows"] == 0 and empty["model_quality"]["judged"] is False
    body = json.loads((tmp_path / "out" / "metrics.json").read_text())
    names = {d["MetricName"]: d["Value"] for d in body["MetricData"]}
    assert names["FeaturesDrifted"] == 0 and names["Rows"] == 0 and names["MonitorFailed"] == 0
    assert "FeatureDrift" not in names and "RMSE" not in names  # nothing judged: no datapoint
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_a_small_window_is_reported_but_not_judged(rows: schema.Rows, base_dir: Path, tmp_path: Path) -> None:
    records = [capture.capture_record(",".join(f), "9.0\n", START + timedelta(seconds=i), f"e{i}", f"k{i}")
               for i, f in enumerate(live_fields(rows)[:100])]
    write_jsonl(tmp_path / "capture" / "a.jsonl", records)
    window = analysis.window_of(START.isoformat(), END.isoformat(), timedelta(hours=1))
    small = monitor.run(tmp_path / "capture", tmp_path / "truth", base_dir, tmp_path / "out", window, SETTINGS)
    assert small["records"]["rows"] == 100 and small["drift"]["judged"] is False
    assert small["features"]["length"]["distance"] is not None  # reported
    assert small["drift"]["count"] == 0 and small["alarms"]["drift"]["breaching"] is False


def test_json_multi_row_and_base64_requests_join_row_by_row(base_dir: Path, tmp_path: Path) -> None:
    rows = [["M", 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15], ["F", 0.53, 0.42, 0.135, 0.677, 0.2565, 0.1415, 0.21]]
    objects = [dict(zip(schema.FEATURES, r)) for r in rows]
    as_csv = "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight\n" + "\n".join(
        ",".join(map(str, r)) for r in rows)
    records = [
        capture.capture_record(json.dumps({"instances": rows}), '{"predictions":[9.0,10.0]}', START, "e1", "json",
                               "application/json", "application/json"),
        capture.capture_record(json.dumps(objects), "9.0\n10.0\n", START, "e2", "objects", "application/json"),
        capture.capture_record(as_csv, "9.0\n10.0\n", START, "e3", None),
    ]
    encoded = capture.capture_record(as_csv, "9.0\n10.0\n", START, "e4", "b64")
    for part in ("endpointInput", "endpointOutput"):
        item = encoded["captureData"][part]
        item["data"], item["encoding"] = base64.b64encode(item["data"].encode()).decode(), "BASE64"
    records.append(encoded)
    write_jsonl(tmp_path / "capture" / "a.jsonl", records)
    truth = [capture.ground_truth_record([10.0, 12.0], key) for key in ("json", "objects", "b64")]
    truth.append(capture.ground_truth_record([10.0, 12.0], "e3"))  # no inference id: the event id
    truth.append(capture.ground_truth_record([10.0], "json-mismatch"))
    write_jsonl(tmp_path / "truth" / "labels.jsonl", truth)
    window = analysis.window_of(START.isoformat(), END.isoformat(), timedelta(hours=1))
    settings = monitor.Settings(quality_min_rows=1)
    result = monitor.run(tmp_path / "capture", tmp_path / "truth", base_dir, tmp_path / "out", window, settings)
    assert result["records"]["rows"] == 8 and result["records"]["malformed_rows"] == 0
    assert result["features"]["sex"]["valid"] == 8
    quality = result["model_quality"]
    assert quality["rows"] == 8 and quality["unmatched"] == 1
    assert quality["mae"] == pytest.approx(1.5)  # |9 - 10| and |10 - 12|, four times


def test_numbers_and_categories_are_read_leniently() -> None:
    x, status = checks.numeric_column(["0.5", 0.25, "", " ", "x", "-1", "nan", "1e400", "true", " 2 "])
    assert status.tolist() == [0, 0, 1, 1, 2, 2, 2, 2, 2, 0]
    assert x[0] == 0.5 and x[1] == 0.25 and x[9] == 2.0 and np.isnan(x[2:9]).all()
    codes, status = checks.categorical_column(["M", "f", " I ", "", "X", 3], schema.SEX_VALUES)
    assert codes.tolist()[:3] == [2, 0, 1] and status.tolist() == [0, 0, 0, 1, 2, 2]


@pytest.mark.parametrize(("p", "q"), [([1, 2, 3], [3, 2, 1]), ([5, 0, 5], [0, 10, 0]), ([1, 1], [1, 1])])
def test_js_distance_is_scipys(p: list[int], q: list[int]) -> None:
    assert checks.js_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-12)


def test_the_window_is_checked() -> None:
    with pytest.raises(UserError, match="ISO 8601"):
        analysis.window_of("yesterday", None, timedelta(0))
    with pytest.raises(UserError, match="at or after it ends"):
        analysis.window_of(END.isoformat(), START.isoformat(), timedelta(0))


def test_a_baseline_from_model_monitor_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "statistics.json").write_text(json.dumps({"version": 0.0, "dataset": {}}))
    (tmp_path / "constraints.json").write_text(json.dumps({"version": 0.0, "features": []}))
    with pytest.raises(UserError, match="monitoring.engine builtin"):
        baseline.Baseline.load(tmp_path)


def test_the_report_page_is_self_contained_and_escaped(report: dict[str, Any], traffic: dict[str, Any]) -> None:
    page = (traffic["root"] / "out" / "report.html").read_text()
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    svgs = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    assert len(svgs) == len(schema.FEATURES) + 1  # each feature, and the prediction
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    hostile = {**report, "endpoint": "<img src=x onerror=alert(1)>"}
    assert "<img" not in report_html.render(hostile)
