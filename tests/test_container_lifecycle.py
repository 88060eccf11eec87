"""The container's entry points as real processes: preprocess -> train -> evaluate -> serve
under a temporary /opt/ml-shaped root, exactly as ``make local`` and SageMaker run them.

One model is trained per test run (20 boosting rounds) and one server serves it to every
HTTP test.
"""

from __future__ import annotations

import csv
import http.client
import importlib.util
import io
import json
import os
import re
import signal
import socket
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent
ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
HEADER = "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight"

pytestmark = pytest.mark.slow


def load_local() -> ModuleType:
    """``scripts/local.py``, the helpers ``make local`` runs the lifecycle with."""
    name = "mlops_local_lifecycle"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "local.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


local = load_local()


@pytest.fixture(scope="session")
def lifecycle(tmp_path_factory: pytest.TempPathFactory):
    run = local.Lifecycle(root=tmp_path_factory.mktemp("lifecycle"),
                          hyperparameters={"num_round": "20", "early_stopping_rounds": "5",
                                           "max_depth": "3", "eta": "0.3"})
    run.preprocess()
    run.train()
    run.report = run.evaluate()
    return run


@pytest.fixture(scope="session")
def server(lifecycle) -> Iterator:
    srv = lifecycle.serve(workers=2, extra_env={"MODEL_SERVER_TIMEOUT": "2",
                                                "MAX_REQUEST_BYTES": "65536"})
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def post(server, body: bytes | str, content_type: str | None = "text/csv",
         accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    return server.request("POST", "/invocations", body.encode() if isinstance(body, str) else body,
                          headers)


# --- batch jobs ----------------------------------------------------------------------------

def test_preprocess_splits_reproducibly(lifecycle, tmp_path: Path) -> None:
    output = lifecycle.jobs / "processing" / "output"
    counts = {}
    for split in ("train", "validation", "test"):
        with open(output / split / f"{split}.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == [*HEADER.split(","), "rings"]
        counts[split] = len(rows) - 1
    assert counts == {"train": 2924, "validation": 627, "test": 626}
    # Built-in XGBoost copies: label first, no header, 14 encoded features.
    first = (output / "xgboost" / "train" / "train.csv").read_text().splitlines()[0].split(",")
    assert len(first) == 15 and float(first[0]) >= 1
    assert not (output / "xgboost" / "test").exists()
    # Model Monitor's baseline dataset: the answer first (rings as a decimal), then the
    # features, as its analyzer reads captured output and input.
    baseline = (output / "baseline" / "baseline.csv").read_text().splitlines()
    train_rows = (output / "train" / "train.csv").read_text().splitlines()
    assert baseline[0] == f"prediction,{HEADER}" and len(baseline) == len(train_rows)
    features, _, rings = train_rows[1].rpartition(",")
    assert baseline[1] == f"{float(rings)!r},{features}"
    # The builtin monitor's feature profile of the train split, which evaluate completes.
    statistics = json.loads((output / "feature_baseline" / "statistics.json").read_text())
    assert statistics["rows"] == counts["train"] and list(statistics["features"]) == HEADER.split(",")
    assert sum(statistics["features"]["length"]["counts"]) == counts["train"]
    # Same input and seed, same split; another seed, another split.
    again = tmp_path / "again"
    (again / "processing/input/raw").mkdir(parents=True)
    (again / "processing/input/raw/abalone.csv").write_bytes(local.SAMPLE_DATA.read_bytes())
    local.run_step("preprocess", again)
    local.run_step("preprocess", again, "--seed", "7", "--output", str(again / "seed7"))
    train_csv = (output / "train" / "train.csv").read_text()
    assert (again / "processing/output/train/train.csv").read_text() == train_csv
    assert (again / "seed7/train/train.csv").read_text() != train_csv


def test_training_prints_metrics_and_writes_the_model(lifecycle) -> None:
    output = next(step.output for step in lifecycle.steps if step.name == "train")
    train_metrics = re.findall(r"train-rmse=([0-9.]+);", output)
    validation_metrics = re.findall(r"validation-rmse=([0-9.]+);", output)
    assert len(train_metrics) == len(validation_metrics) >= 2
    model_dir = lifecycle.jobs / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.ubj", "preprocessing.json",
                                                           "training.json"]
    metadata = json.loads((model_dir / "training.json").read_text())
    assert metadata["device"] == "cpu"
    assert metadata["rounds"] <= 20
    # The last line carries the kept round's values: what SageMaker records.
    assert float(validation_metrics[-1]) == pytest.approx(metadata["metrics"]["validation-rmse"],
                                                          abs=1e-6)
    history = json.loads((lifecycle.jobs / "output/data/training_history.json").read_text())
    assert set(history) == {"train", "validation"}


def test_evaluate_writes_the_monitoring_baseline(lifecycle) -> None:
    directory = lifecycle.jobs / "processing" / "baseline"
    statistics = json.loads((directory / "statistics.json").read_text())
    constraints = json.loads((directory / "constraints.json").read_text())
    prediction = statistics["prediction"]
    assert prediction["source"] == "test split" and sum(prediction["counts"]) == 626
    assert set(constraints["features"]) == set(statistics["features"])
    assert constraints["features"]["sex"]["domain"] == ["F", "I", "M"]


def test_evaluation_report_shape(lifecycle) -> None:
    metrics = lifecycle.report["regression_metrics"]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    for entry in metrics.values():
        assert set(entry) == {"value", "standard_deviation"}
        assert entry["standard_deviation"] > 0
    assert metrics["rmse"]["value"] == pytest.approx(metrics["mse"]["value"] ** 0.5)
    assert 1.5 < metrics["rmse"]["value"] < 3.0
    assert 0.3 < metrics["r2"]["value"] < 0.8


def _builtin_artifact(lifecycle, tmp_path: Path, version: str):
    """``model.tar.gz`` as built-in XGBoost ``version`` writes it (trained on preprocess's
    encoded copies), raw rows, and what XGBoost predicts for them."""
    import numpy as np
    import xgboost as xgb

    from .test_container_units import (
        BUILTIN_1_7_MODEL,
        BUILTIN_1_7_PREDICTIONS,
        BUILTIN_1_7_ROWS,
        schema,
    )

    artifact = tmp_path / "xgboost-model"
    if version == "1.7-1":  # XGBoost 1.7's legacy binary format
        artifact.write_bytes(BUILTIN_1_7_MODEL)
        rows, expected = BUILTIN_1_7_ROWS, BUILTIN_1_7_PREDICTIONS
    else:  # 3.0-5 saves the same way, which XGBoost 3 writes as UBJSON
        encoded = np.loadtxt(lifecycle.jobs / "processing/output/xgboost/train/train.csv",
                             delimiter=",")
        booster = xgb.train({"max_depth": 3, "eta": 0.3, "nthread": 1},
                            xgb.DMatrix(encoded[:, 1:], label=encoded[:, 0]),
                            num_boost_round=20)
        # save_model("xgboost-model") writes these bytes (and warns of its default).
        artifact.write_bytes(booster.save_raw("ubj"))
        rows = BUILTIN_1_7_ROWS
        features = schema.FeatureSpec().encode(schema.parse_csv("\n".join(rows)))
        expected = booster.inplace_predict(features)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as archive:
        archive.add(artifact, arcname="xgboost-model")
    return tmp_path / "model.tar.gz", rows, expected


@pytest.mark.parametrize("version", ["1.7-1", "3.0-5"])
def test_evaluate_scores_a_builtin_xgboost_model(lifecycle, tmp_path: Path, version: str) -> None:
    """A model.tar.gz from the built-in algorithm, trained on preprocess's encoded copies."""
    tarball, _, _ = _builtin_artifact(lifecycle, tmp_path, version)
    step = local.run_step("evaluate", tmp_path, "--model", str(tarball),
                          "--test", str(lifecycle.jobs / "processing/output/test"),
                          "--output", str(tmp_path / "evaluation"))
    assert "model: builtin" in step.output
    report = json.loads((tmp_path / "evaluation/evaluation.json").read_text())
    assert 1.5 < report["regression_metrics"]["rmse"]["value"] < 3.0


@pytest.mark.parametrize("version", ["1.7-1", "3.0-5"])
def test_a_builtin_xgboost_model_is_served_from_raw_rows(lifecycle, tmp_path: Path,
                                                         version: str) -> None:
    """What the workflow deploys when the built-in image trained: this container, serving
    the built-in artifact to the rows clients send (the built-in image takes only encoded,
    numeric CSV)."""
    import numpy as np

    tarball, rows, expected = _builtin_artifact(lifecycle, tmp_path, version)
    endpoint = local.Lifecycle(root=tmp_path / "endpoint")
    endpoint.model_tarball.parent.mkdir(parents=True)
    endpoint.model_tarball.write_bytes(tarball.read_bytes())
    srv = endpoint.serve(workers=1, log=tmp_path / "serve.log")
    try:
        srv.wait_ready()
        status, headers, body = post(srv, "\n".join(rows))
        assert status == 200 and headers["content-type"] == "text/csv"
        assert np.allclose([float(v) for v in body.split()], expected, rtol=1e-6)
        assert post(srv, f"{HEADER}\n" + "\n".join(rows))[2] == body
        keyed = [dict(zip(HEADER.split(","), [r.split(",")[0], *map(float, r.split(",")[1:])]))
                 for r in rows]
        status, _, answer = post(srv, json.dumps({"instances": keyed}), "application/json",
                                 "application/json")
        assert status == 200
        assert json.loads(answer)["predictions"] == [float(v) for v in body.split()]
    finally:
        srv.stop()
    assert "serving the builtin model" in srv.log()


# --- serving --------------------------------------------------------------------------------

def test_ping_and_execution_parameters(server) -> None:
    status, _, body = server.request("GET", "/ping")
    assert status == 200
    status, _, _ = server.request("HEAD", "/ping")
    assert status == 200
    status, headers, body = server.request("GET", "/execution-parameters")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD",
                                "MaxPayloadInMB": 1}


def test_csv_rows_in_every_shape_get_the_same_prediction(server) -> None:
    status, headers, single = post(server, ROW)
    assert status == 200 and headers["content-type"] == "text/csv"
    value = float(single)
    assert 3 < value < 20
    for body in (f"{ROW},15", f"{HEADER}\n{ROW}\n", f"{HEADER},rings\n{ROW},15\r\n"):
        assert post(server, body)[2] == single
    status, _, many = post(server, "\n".join([ROW, "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21"] * 50))
    lines = many.decode().split()
    assert status == 200 and len(lines) == 100 and lines[0] == single.decode().strip()
    assert post(server, ROW, content_type=None)[2] == single  # no Content-Type: CSV


def test_json_requests_and_answers(server) -> None:
    single = float(post(server, ROW)[2])
    values = ["M", 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]
    keyed = dict(zip(HEADER.split(","), values))
    for body in ({"instances": [values, keyed]}, [values, keyed]):
        status, headers, answer = post(server, json.dumps(body), "application/json",
                                       "application/json")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(answer) == {"predictions": [single, single]}
    status, headers, answer = post(server, json.dumps([values]), "application/json")
    assert headers["content-type"] == "text/csv" and float(answer) == single
    status, headers, answer = post(server, ROW, accept="application/json")
    assert json.loads(answer) == {"predictions": [single]}


BAD_REQUESTS = [
    # (body, content type, accept, status, words of the message)
    ("M,0.455,0.365", "text/csv", None, 400, "line 1: expected 8 columns"),
    ("M,0.455,0.365,abc,0.514,0.2245,0.101,0.15", "text/csv", None, 400,
     "line 1, column 'height': 'abc' is not a number"),
    (f"{ROW}\nQ,0.455,0.365,0.095,0.514,0.2245,0.101,0.15", "text/csv", None, 400,
     "line 2, column 'sex': unknown value 'Q'"),
    ("M,0.455,0.365,0.095,-1,0.2245,0.101,0.15", "text/csv", None, 400, "must be a finite number >= 0"),
    ("", "text/csv", None, 400, "empty request body"),
    ("\n\n", "text/csv", None, 400, "empty request body"),
    (b"\xff\xfe", "text/csv", None, 400, "not UTF-8"),
    ("sex,weight\nM,1", "text/csv", None, 400, "header must be"),
    ('{"instances": [["M", 0.4', "application/json", None, 400, "malformed JSON"),
    ('{"rows": []}', "application/json", None, 400, '{"instances": [...]}'),
    ('{"instances": [["M", 1, 1, 1, 1, 1, 1, "x"]]}', "application/json", None, 400,
     "instance 1, column 'shell_weight': must be a JSON number"),
    ('{"instances": []}', "application/json", None, 400, "no instances"),
    (ROW, "text/plain", None, 415, "unsupported Content-Type 'text/plain'"),
    (ROW, "application/x-www-form-urlencoded", None, 415, "send text/csv or application/json"),
    (ROW, "text/csv", "text/html", 406, "cannot answer in 'text/html'"),
    (ROW, "text/csv", "application/json;q=0", 406, "accept text/csv or application/json"),
]


def error_message(headers: dict[str, str], answer: bytes) -> str:
    """The message of an error answer: ``{"message": "<one line>"}``."""
    assert headers["content-type"] == "application/json", answer[:200]
    document = json.loads(answer)
    assert set(document) == {"message"}, document
    message = document["message"]
    assert isinstance(message, str) and message and "\n" not in message
    assert len(message) <= 1003, f"a {len(message)}-character message"
    return message


@pytest.mark.parametrize(("body", "content_type", "accept", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_4xx_with_a_message(server, body, content_type, accept, status,
                                             message) -> None:
    got, headers, answer = post(server, body, content_type, accept)
    assert got == status, answer
    assert message in error_message(headers, answer)
    assert server.request("GET", "/ping")[0] == 200
    assert post(server, ROW)[0] == 200


def test_wrong_routes_and_methods(server) -> None:
    status, headers, body = server.request("GET", "/invocations")
    assert status == 405 and headers["allow"] == "POST"
    assert "use POST" in error_message(headers, body)
    assert server.request("POST", "/ping")[0] == 405
    status, headers, body = server.request("GET", "/predict")
    assert status == 404 and "no route GET /predict" in error_message(headers, body)


def test_oversize_body_is_refused_before_it_is_read(server) -> None:
    body = "\n".join([ROW] * 2000)  # ~90 KB over the test server's 64 KiB limit
    status, headers, answer = post(server, body)
    assert status == 413 and headers["connection"] == "close"
    assert error_message(headers, answer) == "request body exceeds 65536 bytes (MAX_REQUEST_BYTES)"
    assert f"413: body of {len(body.encode())} bytes refused" in server.log()
    assert server.request("GET", "/ping")[0] == 200


# --- pathological bodies: each a 4xx with a JSON message, and the worker serves on -----------

VALUES = [0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]
JSON_ROW = json.dumps(["M", *VALUES])
CSV = "text/csv"
JS = "application/json"


def _instances(*instances: str) -> str:
    return '{"instances": [' + ",".join(instances) + "]}"


def _with(position: int, value: str) -> str:
    """An instance (JSON text) whose value at ``position`` is ``value`` (JSON text)."""
    cells = [json.dumps("M"), *map(json.dumps, VALUES)]
    cells[position] = value
    return "[" + ",".join(cells) + "]"


def _keyed(**raw: str) -> str:
    cells = dict(zip(HEADER.split(","), [json.dumps("M"), *map(json.dumps, VALUES)]))
    cells.update(raw)
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in cells.items()) + "}"


# (id, body, content type, accept, status, words of the message); the test server takes
# bodies up to 64 KiB (bigger ones: test_huge_pathological_bodies).
PATHOLOGICAL = [
    # nesting far past Python's recursion limit (RecursionError was a 500)
    ("deep-arrays", "[" * 30000 + "]" * 30000, JS, None, 400, "nested too deeply"),
    ("deep-unclosed", "[" * 60000, JS, None, 400, "nested too deeply"),
    ("deep-instances", '{"instances": ' + "[" * 30000 + "]" * 30000 + "}", JS, None, 400,
     "nested too deeply"),
    ("deep-objects", '{"a":' * 10000 + "1" + "}" * 10000, JS, None, 400, "nested too deeply"),
    ("deep-sex", _instances(_with(0, "[" * 500 + "]" * 500)), JS, None, 400,
     "column 'sex': must be one of F, I, M (a string), got a list of 1 value"),
    ("deep-measurement", _instances(_with(3, "[" * 500 + "]" * 500)), JS, None, 400,
     "column 'height': must be a JSON number, got a list of 1 value"),
    # numbers
    ("1e400", _instances(_with(1, "1e400")), JS, None, 400,
     "column 'length': must be a finite number >= 0, got inf"),
    ("-1e400", _instances(_with(1, "-1e400")), JS, None, 400, "got -inf"),
    ("int-past-float", _instances(_with(2, "9" * 400)), JS, None, 400,
     "column 'diameter': must be a finite number >= 0, got inf"),
    ("int-4301-digits", _instances(_with(2, "9" * 4301)), JS, None, 400,
     "malformed JSON: a number has more than 4300 digits"),
    ("NaN", _instances(_with(1, "NaN")), JS, None, 400, "NaN is not valid JSON"),
    ("Infinity", _instances(_with(1, "Infinity")), JS, None, 400, "Infinity is not valid JSON"),
    ("-Infinity", _instances(_with(1, "-Infinity")), JS, None, 400, "-Infinity is not valid JSON"),
    ("csv-1e400", ROW.replace("0.455", "1e400"), CSV, None, 400, "finite number >= 0, got inf"),
    ("csv-nan", ROW.replace("0.455", "NaN"), CSV, None, 400, "finite number >= 0, got nan"),
    ("csv-arabic-digits", ROW.replace("0.455", "\u0660.\u0664"), CSV, None, 400,
     "column 'length': '\u0660.\u0664' is not a number"),
    ("csv-fullwidth-digits", ROW.replace("0.15", "\uff11"), CSV, None, 400,
     "column 'shell_weight': '\uff11' is not a number"),
    ("csv-hex", ROW.replace("0.455", "0x1p3"), CSV, None, 400, "'0x1p3' is not a number"),
    # encodings
    ("invalid-utf8", ROW.encode().replace(b"M", b"\xc3\x28"), CSV, None, 400,
     "not UTF-8 text (invalid continuation byte at byte 0)"),
    ("truncated-utf8", ROW.encode() + b"\xe2\x82", CSV, None, 400, "not UTF-8 text"),
    ("utf16-json", JSON_ROW.encode("utf-16"), JS, None, 400, "not UTF-8 text"),
    ("lone-surrogate", _instances(_with(0, '"\\ud800"')), JS, None, 400,
     "column 'sex': unknown value '\\ud800'"),
    ("bom-only", b"\xef\xbb\xbf", CSV, None, 400, "empty request body"),
    ("double-bom", b"\xef\xbb\xbf\xef\xbb\xbf" + JSON_ROW.encode(), JS, None, 400,
     "malformed JSON"),
    # repeated keys (json.loads keeps the last silently)
    ("duplicate-instances", '{"instances": [], "instances": [' + JSON_ROW + "]}", JS, None, 400,
     "key 'instances' appears twice in one object"),
    ("duplicate-column", _instances(_keyed()[:-1] + ',"sex":"F"}'), JS, None, 400,
     "key 'sex' appears twice"),
    # wrong types at every level
    ("top-number", "5", JS, None, 400, "'instances' must be a list of rows"),
    ("top-string", '"M,0.455"', JS, None, 400, "'instances' must be a list of rows"),
    ("top-null", "null", JS, None, 400, "'instances' must be a list of rows"),
    ("top-true", "true", JS, None, 400, "'instances' must be a list of rows"),
    ("instances-null", '{"instances": null}', JS, None, 400, "'instances' must be a list"),
    ("instances-object", '{"instances": {"sex": "M"}}', JS, None, 400,
     "'instances' must be a list"),
    ("instances-string", '{"instances": "' + ROW + '"}', JS, None, 400,
     "'instances' must be a list"),
    ("no-instances-key", '{"data": [' + JSON_ROW + "]}", JS, None, 400,
     '{"instances": [...]}'),
    ("empty-list", "[]", JS, None, 400, "no instances"),
    ("instance-null", "[null]", JS, None, 400, "instance 1: each instance must be a list"),
    ("instance-string", f'["{ROW}"]', JS, None, 400, "instance 1: each instance must be a list"),
    ("instance-number", f"[{JSON_ROW}, 7]", JS, None, 400, "instance 2: each instance must be"),
    ("instance-short", '[["M", 0.455]]', JS, None, 400, "instance 1: expected 8 columns"),
    ("instance-long", "[" + json.dumps(["M", *VALUES, 9, 9]) + "]", JS, None, 400,
     "got 10"),
    ("sex-null", _instances(_with(0, "null")), JS, None, 400, "(a string), got null"),
    ("sex-number", _instances(_with(0, "1")), JS, None, 400, "(a string), got 1"),
    ("sex-object", _instances(_with(0, '{"M": 1}')), JS, None, 400, "got an object of 1 key"),
    ("measurement-string", _instances(_with(4, '"0.5"')), JS, None, 400,
     "column 'whole_weight': must be a JSON number, got \"0.5\""),
    ("measurement-null", _instances(_with(5, "null")), JS, None, 400, "got null"),
    ("measurement-bool", _instances(_with(6, "false")), JS, None, 400, "got false"),
    ("measurement-list", _instances(_with(7, "[0.15]")), JS, None, 400, "got a list of 1 value"),
    ("measurement-negative", _instances(_with(7, "-0.15")), JS, None, 400,
     "column 'shell_weight': must be a finite number >= 0"),
    ("keyed-unknown", _instances(_keyed(weight="1")), JS, None, 400, "unknown column 'weight'"),
    ("keyed-long-key", _instances(_keyed(**{"k" * 20000: "1"})), JS, None, 400,
     "... (20000 characters)"),
    ("keyed-missing", '[{"sex": "M"}]', JS, None, 400, "missing column 'length'"),
    ("keyed-nested", _instances(_keyed(length='{"value": 0.455}')), JS, None, 400,
     "column 'length': must be a JSON number, got an object of 1 key"),
    # malformed JSON
    ("truncated-json", '{"instances": [' + JSON_ROW, JS, None, 400, "malformed JSON"),
    ("trailing-data", f"[{JSON_ROW}] []", JS, None, 400, "malformed JSON: Extra data"),
    ("single-quotes", "{'instances': []}", JS, None, 400, "malformed JSON"),
    ("comment", f"// rows\n[{JSON_ROW}]", JS, None, 400, "malformed JSON"),
    ("csv-sent-as-json", ROW, JS, None, 400, "malformed JSON"),
    ("json-sent-as-csv", f"[{JSON_ROW}]", CSV, None, 400, "column 'sex'"),
    # empty and blank
    ("empty-csv", b"", CSV, None, 400, "empty request body"),
    ("empty-json", b"", JS, None, 400, "empty request body"),
    ("whitespace-csv", " \t\r\n \n", CSV, None, 400, "empty request body"),
    ("whitespace-json", "\n\n   \t", JS, None, 400, "empty request body"),
    # CSV shapes
    ("csv-10000-columns", ",".join(["M", *["0.1"] * 9999]), CSV, None, 400,
     "line 1: expected 8 columns"),
    ("csv-10000-column-header", "sex," + ",".join(f"c{i}" for i in range(9999)) + "\n" + ROW,
     CSV, None, 400, "line 1: header must be"),
    ("csv-nul-in-number", ROW.replace("0.455", "0.4\x0055"), CSV, None, 400,
     "column 'length': '0.4\\x0055' is not a number"),
    ("csv-nul-row", f"{ROW}\n\x00\x00\x00\n{ROW}", CSV, None, 400, "line 2"),
    ("csv-nul-sex", "\x00" + ROW, CSV, None, 400, "column 'sex': unknown value '\\x00M'"),
    ("csv-only-commas", ",,,,,,,", CSV, None, 400, "column 'sex'"),
    ("csv-unterminated-quote", '"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15', CSV, None, 400,
     "line 1"),
    ("csv-huge-cell", ROW.replace("0.455", "x" * 60000), CSV, None, 400,
     "... (60000 characters) is not a number"),
    ("csv-record-separator", ROW.replace(",0.365", "\x1e,0.365"), CSV, None, 400,
     "expected 8 columns"),
    # headers
    ("content-type-xml", ROW, "application/xml", None, 415, "unsupported Content-Type"),
    ("content-type-form", ROW, "multipart/form-data; boundary=x", None, 415,
     "unsupported Content-Type"),
    ("content-type-garbage", ROW, ";;;", None, 415, "unsupported Content-Type"),
    ("charset-utf16", ROW.encode("utf-16"), "text/csv; charset=utf-16", None, 415,
     "unsupported charset 'utf-16' in Content-Type; send UTF-8"),
    ("charset-unknown", ROW, 'application/json; charset="x-klingon"', None, 415,
     "unsupported charset"),
    ("charset-ascii-not-ascii", ROW.replace("M", "\u00e9").encode(), "text/csv; charset=us-ascii",
     None, 400, "the body is not US-ASCII text"),
    ("accept-html", ROW, CSV, "text/html", 406, "cannot answer in 'text/html'"),
    ("accept-image", ROW, CSV, "image/*", 406, "accept text/csv or application/json"),
    ("accept-all-refused", ROW, CSV, "text/csv;q=0, application/json;q=0", 406, "cannot answer"),
    ("accept-garbage", ROW, CSV, ";;;,,,", 406, "cannot answer"),
    ("accept-bad-q", ROW, CSV, "application/json;q=lots", 406, "cannot answer"),
]


@pytest.mark.parametrize(("body", "content_type", "accept", "status", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in PATHOLOGICAL])
def test_pathological_bodies_get_4xx_json_and_the_worker_lives_on(
        server, body, content_type, accept, status, message) -> None:
    workers = _children(server.pid) if Path("/proc/self/task").exists() else None
    got, headers, answer = post(server, body, content_type, accept)
    assert got == status, answer[:300]
    assert message in error_message(headers, answer)
    assert post(server, ROW)[0] == 200
    assert server.request("GET", "/ping")[0] == 200
    if workers is not None:
        assert _children(server.pid) == workers, "a worker died on the request"


@pytest.mark.parametrize(("body", "content_type"), [
    pytest.param(b"\xef\xbb\xbf" + ROW.encode(), CSV, id="bom-csv"),
    pytest.param(b"\xef\xbb\xbf" + f"{HEADER}\r\n{ROW}\r\n".encode(), CSV, id="bom-csv-header"),
    pytest.param(b"\xef\xbb\xbf" + _instances(JSON_ROW).encode(), JS, id="bom-json"),
    pytest.param(ROW, "text/csv; charset=utf-8", id="charset-utf-8"),
    pytest.param(ROW, 'text/csv; charset="UTF-8"', id="charset-quoted"),
    pytest.param(ROW, "text/csv;charset=us-ascii", id="charset-ascii"),
    pytest.param(ROW.encode("latin-1"), "text/csv; charset=ISO-8859-1", id="charset-latin-1"),
    pytest.param(_instances(JSON_ROW), "Application/JSON; charset=utf-8", id="json-charset"),
    pytest.param(f"  {ROW}  \r\n\r\n", CSV, id="padded-csv"),
    pytest.param(f"\n\t{_instances(_keyed())}\n", JS, id="padded-json"),
])
def test_tolerated_oddities_are_answered(server, body, content_type) -> None:
    expected = post(server, ROW)[2]
    status, _, answer = post(server, body, content_type)
    assert status == 200, answer
    assert answer == expected


def test_huge_pathological_bodies(lifecycle, tmp_path: Path) -> None:
    """Bodies past the shared test server's 64 KiB limit, under the default 6 MiB."""
    srv = lifecycle.serve(workers=1, log=tmp_path / "serve.log")
    try:
        srv.wait_ready()
        cases = [
            ("[" * 100_000 + "]" * 100_000, JS, "nested too deeply"),
            ('{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}", JS, "nested too deeply"),
            ('{"a":' * 100_000 + "1" + "}" * 100_000, JS, "nested too deeply"),
            # csv's field limit (128 KiB) raised csv.Error: a 500
            ('"' + "M" * 200_000 + '",' + ROW[2:], CSV, "line 1: not valid CSV"),
            ("\n".join([",".join(["M", *["0.1"] * 9999])] * 100), CSV, "expected 8 columns"),
            ("[" + ",".join([_with(1, "1e400")] * 20_000) + "]", JS, "got inf"),
        ]
        workers = _children(srv.pid) if Path("/proc/self/task").exists() else None
        for body, content_type, message in cases:
            status, headers, answer = post(srv, body, content_type)
            assert status == 400, answer[:300]
            assert message in error_message(headers, answer)
            assert post(srv, ROW)[0] == 200
        if workers is not None:
            assert _children(srv.pid) == workers
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()


def _raw(server, payload: bytes, *, read_until_close: bool = True,
         timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(payload)
        if not read_until_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _request(body: str, *, close: bool = False) -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
            f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
            f"\r\n{body}").encode()


def test_keep_alive_and_pipelining(server) -> None:
    answer = _raw(server, _request(ROW) + _request(ROW) + _request(ROW, close=True))
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.rstrip().endswith(post(server, ROW)[2].strip())


def test_chunked_body(server) -> None:
    row = ROW.encode()
    payload = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               + b"%x\r\n%s\r\n" % (10, row[:10]) + b"%x\r\n%s\r\n" % (len(row) - 10, row[10:])
               + b"0\r\n\r\n")
    answer = _raw(server, payload)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert answer.split(b"\r\n\r\n", 1)[1] == post(server, ROW)[2]


def test_malformed_http_is_400_and_the_server_lives_on(server) -> None:
    answer = _raw(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"malformed HTTP request" in answer
    answer = _raw(server, b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70000
                  + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431")
    assert server.request("GET", "/ping")[0] == 200


def _ping_with_headers(*sizes: int) -> bytes:
    """GET /ping whose header lines count ``sum(sizes)`` bytes as the server counts them
    (name + value + 4 for ": " and CRLF): "Host: x" (9) and one X-Pad header per further size."""
    assert sizes[0] == 9
    pads = b"".join(b"X-Pad%d: " % n + b"a" * (size - 10) + b"\r\n" for n, size in enumerate(sizes[1:], 1))
    return b"GET /ping HTTP/1.1\r\nHost: x\r\n" + pads + b"\r\n"


@pytest.mark.parametrize(("sizes", "status"), [
    ((9, 65536 - 9), 200),           # exactly MAX_HEADER_BYTES (64 KiB)
    ((9, 65536 - 8), 431),           # one byte over
    ((9, 30000, 30000, 5527), 200),  # several headers: their sum counts
    ((9, 30000, 30000, 5528), 431),
])
def test_headers_are_refused_past_64_kib_in_all(server, sizes: tuple[int, ...], status: int) -> None:
    answer = _raw(server, _ping_with_headers(*sizes), read_until_close=False)
    assert answer.startswith(b"HTTP/1.1 %d" % status), answer[:200]


def test_each_request_on_a_connection_gets_its_own_header_allowance(server) -> None:
    # Three requests of 40,000 header bytes each on one keep-alive connection: the count
    # starts again with each request (120,000 bytes in all is no reason for a 431).
    one = _ping_with_headers(9, 40000)
    answer = _raw(server, one * 2 + one[:-2] + b"Connection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200") == 3 and b"431" not in answer


def _parsed(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 answer read by http.client's own parser."""

    class Answer:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    response = http.client.HTTPResponse(Answer())  # type: ignore[arg-type]
    response.begin()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()


@pytest.mark.parametrize(("payload", "status", "message"), [
    (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed HTTP request: not valid HTTP/1.1"),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431,
     "request headers exceed 65536 bytes"),
])
def test_bad_http_gets_a_well_formed_json_answer(server, payload: bytes, status: int,
                                                  message: str) -> None:
    """The answers written below uvicorn's protocol (not by the app) are well-formed HTTP
    for a client's parser: the status, exactly these headers, a JSON message of the length
    declared, and the connection closed. A 431 is logged (a client's bug, or an attack)."""
    got, headers, body = _parsed(_raw(server, payload))
    assert got == status
    assert set(headers) == {"date", "content-type", "content-length", "connection"}
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body) and json.loads(body) == {"message": message}
    time.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT")
    assert (f"431: {message}" in server.log()) is (status == 431)


def test_incomplete_request_times_out_with_408(server) -> None:
    started = time.monotonic()
    answer = _raw(server, b"POST /invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\nM,0.4")
    assert answer.startswith(b"HTTP/1.1 408")
    assert 1.5 < time.monotonic() - started < 8  # MODEL_SERVER_TIMEOUT=2 plus one sweep


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_worker_is_replaced(server) -> None:
    workers = _children(server.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = _children(server.pid)
        if len(current) == 2 and workers[0] not in current:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker not replaced: {current}")
    for _ in range(10):  # either worker may take each new connection
        assert post(server, ROW)[0] == 200
    assert f"worker {workers[0]} exited" in server.log()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_each_worker_runs_one_thread(server) -> None:
    # The workers share the CPUs: each predicts on its one thread (OMP_NUM_THREADS=1 before
    # the model's libraries load), with no thread pool of a numeric library beside it.
    assert post(server, "\n".join([ROW] * 500))[0] == 200
    workers = _children(server.pid)
    assert len(workers) == 2
    assert {worker: len(os.listdir(f"/proc/{worker}/task")) for worker in workers} == dict.fromkeys(workers, 1)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_clients_that_connect_at_once_keep_every_worker_busy(server) -> None:
    """Two clients that connect at the same moment and keep their connections (a batch
    transform's MaxConcurrentTransforms 2): a uvicorn worker that wakes accepts both, so
    without httpserver.Balance one worker did all the work while the other idled. With it,
    the crowded worker closes a connection after a response, and the client's reconnect
    goes to the idle worker."""
    body = "\n".join([ROW] * 1400)  # ~63 KB, under the fixture's MAX_REQUEST_BYTES
    workers = _children(server.pid)
    before = {pid: _cpu_seconds(pid) for pid in workers}
    start = threading.Barrier(2)
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        start.wait()
        connection.connect()
        for _ in range(300):
            connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"{response.status}")
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    used = {pid: _cpu_seconds(pid) - before[pid] for pid in workers}
    assert min(used.values()) > 0.25 * sum(used.values()), used


def test_server_stops_cleanly_on_sigterm(lifecycle, tmp_path: Path) -> None:
    srv = lifecycle.serve(workers=1, log=tmp_path / "serve.log")
    try:
        srv.wait_ready()
        assert post(srv, ROW)[0] == 200
    finally:
        code = srv.stop()
    assert code == 0
    assert "stopped" in srv.log()


# --- dropping root -------------------------------------------------------------------------
# Nothing here depends on where the repository is cloned: the package is copied where the
# test needs it (readable by ``nobody``, or not), and so is the model.

NEEDS_ROOT = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="needs root: the workers drop root to MLCONTAINER_USER=nobody")


def _nobody() -> None:
    import pwd

    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")


def _package_copy(parent: Path) -> Path:
    """The container package copied to ``parent/container``, the directory returned (for
    PYTHONPATH)."""
    import shutil

    target = parent / "container"
    shutil.copytree(REPO / "container" / "mlcontainer", target / "mlcontainer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _unpacked_model(lifecycle, root: Path) -> Path:
    """An /opt/ml-shaped root with the trained model.tar.gz unpacked in ``model/``."""
    (root / "model").mkdir(parents=True)
    with tarfile.open(lifecycle.model_tarball) as archive:
        archive.extractall(root / "model", filter="data")
    return root


def _as_nobody(code: Path) -> dict[str, str]:
    """The environment of a server as ``nobody``, running the package copied to ``code``
    (PYTHONSAFEPATH: ``python -m`` must not import it from the working directory)."""
    others = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
              if entry and Path(entry).resolve() != REPO / "container"]
    return {"MLCONTAINER_USER": "nobody", "PYTHONPATH": os.pathsep.join([str(code), *others]),
            "PYTHONSAFEPATH": "1"}


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A temporary directory anyone may read (pytest's own are 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="mlcontainer-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@NEEDS_ROOT
def test_server_workers_drop_root(lifecycle, tmp_path: Path, readable_dir: Path) -> None:
    """The workers serve as ``nobody``, even from a model only root can read (the master
    reads it before forking)."""
    import subprocess

    _nobody()
    env = _as_nobody(_package_copy(readable_dir))
    # The package copy is readable; this Python (standard library, NumPy, XGBoost, uvloop,
    # httptools) belongs to the machine: one installed in root's home is not, and then the
    # server rightly refuses to start (test_server_refuses_to_start_...).
    check = subprocess.run(
        [sys.executable, "-c", "from mlcontainer import privileges; privileges.check_server()"],
        env=local.container_env(tmp_path, env), capture_output=True, text=True, check=False)
    if check.returncode != 0:
        pytest.skip("nobody cannot run this Python: " + check.stderr.strip().splitlines()[-1])
    private = tmp_path / "root-only"
    root = _unpacked_model(lifecycle, private)
    private.chmod(0o700)
    srv = local.Server(root, workers=1, extra_env=env, log=tmp_path / "serve.log")
    try:
        srv.wait_ready()
        assert post(srv, ROW)[0] == 200
        workers = _children(srv.pid)
        assert len(workers) == 1
        status = Path(f"/proc/{workers[0]}/status").read_text()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.MULTILINE).groups()
        assert uids == ("65534",) * 3, f"the worker runs as uids {uids}"
    finally:
        srv.stop()


@NEEDS_ROOT
def test_server_refuses_to_start_when_the_user_cannot_read_its_code(lifecycle,
                                                                    tmp_path: Path) -> None:
    """A checkout in a 0700 home: the workers could not import after dropping root (they
    hung, /ping unanswered, nothing logged). The server must exit at once, naming the
    path and the user."""
    import subprocess

    _nobody()
    home = tmp_path / "home"
    code = _package_copy(home / "checkout")
    home.chmod(0o700)
    root = _unpacked_model(lifecycle, tmp_path / "hosting")
    srv = local.Server(root, workers=2, extra_env=_as_nobody(code), log=tmp_path / "serve.log")
    started = time.monotonic()
    try:
        returncode = srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the server neither exited nor said why within 30 s:\n" + srv.log())
    finally:
        srv.stop()
    assert returncode == 1
    assert time.monotonic() - started < 30
    log = srv.log()
    reasons = [line for line in log.splitlines() if "cannot read" in line]
    assert len(reasons) == 1, log
    assert re.fullmatch(
        rf"\[\d+\] serve: MLCONTAINER_USER=nobody: user nobody cannot read "
        rf"{re.escape(str(code / 'mlcontainer'))}, .*unset MLCONTAINER_USER", reasons[0]), log
    assert "Traceback" not in log and "serving" not in log


_WORKER_IMPORT_AUDIT = """
import os, sys
from mlcontainer import privileges, server

dropped = []
def audit(event, args):
    if dropped and event == "import":
        os.write(2, b"imported after the drop: " + str(args[0]).encode() + b"\\n")
sys.addaudithook(audit)
privileges.drop_for_server = lambda: dropped.append(True)
sys.exit(server.main([]))
"""


class _Endpoint:
    """A server on 127.0.0.1:``port`` for ``post`` and ``_raw`` (local.Server's requests)."""

    request = local.Server.request

    def __init__(self, port: int) -> None:
        self.port = port


def test_a_worker_imports_nothing_once_it_has_dropped_root(lifecycle, tmp_path: Path) -> None:
    """The root cause of the silent hang: modules imported after the drop, from where the
    user may not read (uvloop in the event loop set-up, httptools per connection; asyncio
    drops a connection whose protocol cannot be made without a word). The real server,
    its workers' drop replaced by a marker, answers every kind of request and error; an
    import audit hook (inherited by the forked workers) reports any module a worker loads
    after the marker."""
    import subprocess

    port = local.free_port()
    log = tmp_path / "worker.log"
    env = local.container_env(lifecycle.jobs, {
        "SAGEMAKER_BIND_TO_PORT": str(port), "MODEL_SERVER_HOST": "127.0.0.1",
        "MODEL_SERVER_WORKERS": "1", "MAX_REQUEST_BYTES": "65536", "MODEL_SERVER_TIMEOUT": "2"})
    with open(log, "wb") as output:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER_IMPORT_AUDIT], env=env,
                                stdout=output, stderr=subprocess.STDOUT)
    srv = _Endpoint(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if srv.request("GET", "/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        # Every path through the worker: the statuses are other tests' business.
        for _, body, content_type, accept, _, _ in PATHOLOGICAL:
            post(srv, body, content_type, accept)
        post(srv, "\n".join([ROW] * 200), accept="application/json")
        post(srv, _instances(_keyed()), JS, "application/json")
        srv.request("GET", "/execution-parameters")
        srv.request("GET", "/nowhere")
        srv.request("PUT", "/invocations")
        post(srv, "\n".join([ROW] * 2000))
        _raw(srv, b"BREW /pot HTCPCP/1.0\r\n\r\n")
        _raw(srv, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        _raw(srv, b"POST /invocations HTTP/1.1\r\nContent-Length: 100\r\n\r\nM,0.4")
        assert post(srv, ROW)[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    imports = [line for line in log.read_text().splitlines() if "imported after the drop" in line]
    assert not imports, imports


@NEEDS_ROOT
def test_batch_jobs_drop_root_only_where_the_user_can_read(tmp_path: Path) -> None:
    """The job's inputs are in pytest's directories (0700), unreadable by ``nobody``: the
    job must then stay root, say why, and succeed."""
    import shutil

    _nobody()
    raw = tmp_path / "processing/input/raw"
    raw.mkdir(parents=True)
    shutil.copy(local.SAMPLE_DATA, raw / "abalone.csv")
    step = local.run_step("preprocess", tmp_path, extra_env={"MLCONTAINER_USER": "nobody"})
    assert "staying root: nobody cannot read" in step.output
    assert (tmp_path / "processing/output/train/train.csv").stat().st_uid == 0
