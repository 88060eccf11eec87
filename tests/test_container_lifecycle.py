"""The container's entry points as real processes: preprocess -> train -> evaluate -> serve
under a temporary /opt/ml-shaped root, exactly as ``make local`` and SageMaker run them.

One model is trained per test run (20 boosting rounds) and one server serves it to every
HTTP test.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import signal
import socket
import sys
import tarfile
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
    # Model Monitor baseline: the train rows as the endpoint captures them.
    baseline = (output / "baseline" / "baseline.csv").read_text().splitlines()
    train_rows = (output / "train" / "train.csv").read_text().splitlines()
    assert baseline[0] == HEADER and len(baseline) == len(train_rows)
    assert baseline[1] == train_rows[1].rsplit(",", 1)[0]
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


def test_evaluation_report_shape(lifecycle) -> None:
    metrics = lifecycle.report["regression_metrics"]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    for entry in metrics.values():
        assert set(entry) == {"value", "standard_deviation"}
        assert entry["standard_deviation"] > 0
    assert metrics["rmse"]["value"] == pytest.approx(metrics["mse"]["value"] ** 0.5)
    assert 1.5 < metrics["rmse"]["value"] < 3.0
    assert 0.3 < metrics["r2"]["value"] < 0.8


def test_evaluate_scores_a_builtin_xgboost_model(lifecycle, tmp_path: Path) -> None:
    """A model.tar.gz from the built-in algorithm, trained on preprocess's encoded copies."""
    import numpy as np
    import xgboost as xgb

    encoded = np.loadtxt(lifecycle.jobs / "processing/output/xgboost/train/train.csv",
                         delimiter=",")
    booster = xgb.train({"max_depth": 3, "eta": 0.3, "nthread": 1},
                        xgb.DMatrix(encoded[:, 1:], label=encoded[:, 0]), num_boost_round=20)
    booster.save_model(str(tmp_path / "model.ubj"))
    (tmp_path / "xgboost-model").write_bytes((tmp_path / "model.ubj").read_bytes())
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "xgboost-model", arcname="xgboost-model")
    step = local.run_step("evaluate", tmp_path, "--model", str(tmp_path / "model.tar.gz"),
                          "--test", str(lifecycle.jobs / "processing/output/test"),
                          "--output", str(tmp_path / "evaluation"))
    assert "model: builtin" in step.output
    report = json.loads((tmp_path / "evaluation/evaluation.json").read_text())
    assert 1.5 < report["regression_metrics"]["rmse"]["value"] < 3.0


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


@pytest.mark.parametrize(("body", "content_type", "accept", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_4xx_with_a_message(server, body, content_type, accept, status,
                                             message) -> None:
    got, headers, answer = post(server, body, content_type, accept)
    assert got == status, answer
    assert headers["content-type"].startswith("text/plain")
    assert message in answer.decode()
    assert server.request("GET", "/ping")[0] == 200
    assert post(server, ROW)[0] == 200


def test_wrong_routes_and_methods(server) -> None:
    status, headers, body = server.request("GET", "/invocations")
    assert status == 405 and headers["allow"] == "POST" and b"use POST" in body
    assert server.request("POST", "/ping")[0] == 405
    status, _, body = server.request("GET", "/predict")
    assert status == 404 and b"no route GET /predict" in body


def test_oversize_body_is_refused_before_it_is_read(server) -> None:
    body = "\n".join([ROW] * 2000)  # ~90 KB over the test server's 64 KiB limit
    status, headers, answer = post(server, body)
    assert status == 413 and headers["connection"] == "close"
    assert b"exceeds 65536 bytes" in answer
    assert server.request("GET", "/ping")[0] == 200


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


def test_server_stops_cleanly_on_sigterm(lifecycle, tmp_path: Path) -> None:
    srv = lifecycle.serve(workers=1, log=tmp_path / "serve.log")
    try:
        srv.wait_ready()
        assert post(srv, ROW)[0] == 200
    finally:
        code = srv.stop()
    assert code == 0
    assert "stopped" in srv.log()


@pytest.mark.skipif(os.geteuid() != 0 or not hasattr(os, "fork"), reason="needs root")
def test_server_workers_drop_root(lifecycle, tmp_path: Path) -> None:
    srv = lifecycle.serve(workers=1, log=tmp_path / "serve.log",
                          extra_env={"MLCONTAINER_USER": "nobody"})
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


@pytest.mark.skipif(os.geteuid() != 0 or not hasattr(os, "fork"), reason="needs root")
def test_batch_jobs_drop_root_only_where_the_user_can_read(tmp_path: Path) -> None:
    """Here the job's inputs (pytest's directories) or this Python (in root's home) may
    be unreadable by ``nobody``: the job must then stay root, say why, and succeed."""
    import shutil

    raw = tmp_path / "processing/input/raw"
    raw.mkdir(parents=True)
    shutil.copy(local.SAMPLE_DATA, raw / "abalone.csv")
    step = local.run_step("preprocess", tmp_path, extra_env={"MLCONTAINER_USER": "nobody"})
    assert "staying root: nobody cannot read" in step.output
    assert (tmp_path / "processing/output/train/train.csv").stat().st_uid == 0
