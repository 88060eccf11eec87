"""The local batch transform (``mlcontainer.transform``): split, mini-batches, concurrency,
retries, join and filters, bad rows, nothing half-written; against a stub server and the
container's real server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from mlcontainer import transform as tf

from tests.test_container_lifecycle import ROW, load_local

local = load_local()


class Stub(BaseHTTPRequestHandler):
    """Answers each CSV row with its first column doubled; ``bad`` rows get 400; the first
    ``fail_first`` invocations get 503; no /execution-parameters unless ``parameters``."""

    protocol_version = "HTTP/1.1"
    calls: ClassVar[list[int]] = []
    fail_first = 0
    parameters: dict | None = None

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/execution-parameters" and self.parameters is not None:
            self._send(200, json.dumps(self.parameters).encode())
        else:
            self._send(404, b'{"message": "no route"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        rows = body.split(b"\n")
        type(self).calls.append(len(rows))
        if len(type(self).calls) <= self.fail_first:
            self._send(503, b'{"message": "busy"}')
        elif any(b"bad" in row for row in rows):
            self._send(400, b'{"message": "a bad value"}')
        else:
            self._send(200, b"".join(b"%d\n" % (2 * int(r.split(b",")[0])) for r in rows))


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.calls, Stub.fail_first, Stub.parameters = [], 0, None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(row + "\n" for row in rows))
    return path


def test_filters_pick_csv_columns() -> None:
    record = b"id7,M,0.5,0.4"
    assert tf.column_filter("$")(record) == record
    assert tf.column_filter("$[1:]")(record) == b"M,0.5,0.4"
    assert tf.column_filter("$[0,-1]")(record) == b"id7,0.4"
    assert tf.column_filter("$[1:3]")(record) == b"M,0.5"
    assert tf.column_filter("$[2]")(record) == b"0.5"
    with pytest.raises(tf.TransformError, match="filter"):
        tf.column_filter("$.features")


def test_input_filters_of_a_whole_file_pick_what_the_filter_of_one_record_picks() -> None:
    records = [b"id1,M,0.5,0.4", b"id2,F,,0.3", b"id3,I,0.1,0.2,9"]
    for expression in ("$", "$[1:]", "$[2:]", "$[-2:]", "$[:2]", "$[1:3]", "$[0,-1]", "$[3]"):
        pick = tf.column_filter(expression)
        assert tf._filtered(records, range(1, 4), expression, "InputFilter") == [
            pick(record) for record in records], expression
    for expression in ("$[4:]", "$[4]"):  # line 3 has 5 columns, lines 1 and 2 have 4
        with pytest.raises(tf.TransformError, match=r"^line 1: InputFilter \$\[4\]?:?\]? does not"):
            tf._filtered(records, range(1, 4), expression, "InputFilter")
    with pytest.raises(tf.TransformError, match=r"^line 9: InputFilter \$\[2:\] does not apply"):
        tf._filtered([b"a,b,c", b"a"], [4, 9], "$[2:]", "InputFilter")


def _greedy(sizes: list[int], max_bytes: int, multi: bool = True) -> list[tuple[int, int]]:
    """The mini-batches as the API reference defines them, record by record: as many whole
    records as fit in MaxPayloadInMB, joined by newlines (one with SingleRecord)."""
    batches, start, payload = [], 0, -1
    for index, size in enumerate(sizes):
        if index > start and (not multi or payload + 1 + size > max_bytes):
            batches.append((start, index))
            start, payload = index, -1
        payload += 1 + size
    return batches + ([(start, len(sizes))] if sizes else [])


def _spans(records: list[bytes], max_bytes: int, multi: bool = True) -> list[tuple[int, int]]:
    body = b"\n".join(records)
    spans = tf.batch_spans(body, max_bytes, multi)
    for start, end, first_byte, end_byte in spans:  # each body is exactly its records
        assert body[first_byte:end_byte] == b"\n".join(records[start:end])
    return [(start, end) for start, end, _, _ in spans]


def test_mini_batches_fill_the_payload_and_refuse_a_big_record() -> None:
    assert _spans([b"aaa"] * 4, 7) == [(0, 2), (2, 4)]  # 3 + 1 + 3 = 7 bytes: exactly full
    assert _spans([b"aaa"] * 4, 6) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert _spans([b"aaa"] * 3, 100) == [(0, 3)]
    assert _spans([b"aaa"] * 3, 100, multi=False) == [(0, 1), (1, 2), (2, 3)]
    assert _spans([b"aaa", b"", b"bb", b""], 4) == [(0, 2), (2, 4)]  # empty records count
    for records, max_bytes in (([b"aaa", b"aaaaaaaaa", b"aaa"], 8), ([b"aaa", b"aaaaaaaaa"], 8)):
        with pytest.raises(tf.TransformError, match="record of 9 bytes exceeds") as err:
            tf.batch_spans(b"\n".join(records), max_bytes)
        assert err.value.line == 1
    with pytest.raises(tf.TransformError) as err:
        tf.batch_spans(b"aaa\naaaaaaaaa", 8, multi=False)
    assert err.value.line == 1


def test_mini_batches_match_the_record_by_record_definition() -> None:
    import random

    generator = random.Random(7)
    for _ in range(300):
        records = [b"x" * generator.choice([0, 1, 2, 5, 9]) for _ in range(generator.randint(1, 40))]
        max_bytes = generator.randint(9, 40)
        for multi in (True, False):
            assert _spans(records, max_bytes, multi) == _greedy([len(r) for r in records],
                                                                 max_bytes, multi)


def test_split_join_order_and_multi_record_batches(stub: str, tmp_path: Path) -> None:
    rows = [f"r{i},{i}" for i in range(1, 2001)]
    source = _write(tmp_path / "input.csv", rows)
    settings = tf.Settings(max_payload_mb=1, max_concurrent_transforms=4, input_filter="$[1:]",
                           join_source="Input")
    [result] = tf.transform(stub, [source], tmp_path / "out", settings, {"max_payload_mb"})
    assert result.output == tmp_path / "out" / "input.csv.out"
    lines = result.output.read_text().splitlines()
    assert lines == [f"r{i},{i},{2 * i}" for i in range(1, 2001)]
    # No /execution-parameters: the default concurrency; 1 MB holds all 2,000 rows.
    assert Stub.calls == [2000] and result.requests == 1


def test_container_parameters_size_the_batches(stub: str, tmp_path: Path) -> None:
    Stub.parameters = {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD",
                       "MaxPayloadInMB": 1}
    source = _write(tmp_path / "in.csv", ["1", "2", "3", "", "4"])
    [result] = tf.transform(stub, [source], tmp_path / "out", tf.Settings())
    assert result.output.read_text() == "2\n4\n6\n8\n"
    assert sorted(Stub.calls) == [1, 1, 1, 1]


def test_5xx_is_retried(stub: str, tmp_path: Path) -> None:
    Stub.fail_first = 2
    source = _write(tmp_path / "in.csv", ["1", "2"])
    [result] = tf.transform(stub, [source], tmp_path / "out", tf.Settings())
    assert result.output.read_text() == "2\n4\n" and result.requests == 3


def test_5xx_past_the_retries_fails(stub: str, tmp_path: Path) -> None:
    Stub.fail_first = 10
    source = _write(tmp_path / "in.csv", ["1", "2"])
    with pytest.raises(tf.TransformError, match="after 1 retries"):
        tf.transform(stub, [source], tmp_path / "out", tf.Settings(retries=1))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_bad_row_fails_the_job_with_its_line_and_writes_nothing(stub: str, tmp_path: Path) -> None:
    rows = [str(i) for i in range(1, 1001)]
    rows[636] = "bad"
    (tmp_path / "in").mkdir()
    _write(tmp_path / "in" / "a.csv", ["1"])
    _write(tmp_path / "in" / "b.csv", rows)
    with pytest.raises(tf.TransformError) as err:
        tf.transform(stub, [tmp_path / "in"], tmp_path / "out",
                     tf.Settings(max_concurrent_transforms=2), {"max_concurrent_transforms"})
    assert err.value.line == 637
    assert "b.csv: line 637: the container refused the record (400: a bad value)" in str(err.value)
    # a.csv finished before b.csv failed; b.csv left nothing behind, not even a partial file.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.csv.out"]


@pytest.mark.slow
def test_the_real_server_drives_like_sagemaker(tmp_path: Path) -> None:
    run = local.Lifecycle(root=tmp_path / "run", hyperparameters={
        "num_round": "10", "early_stopping_rounds": "5", "max_depth": "3", "eta": "0.3"})
    run.preprocess()
    run.train()
    run.evaluate()
    server = run.serve(workers=2)
    try:
        server.wait_ready()
        rows = [f"id-{i},{ROW}" for i in range(5000)]
        source = _write(tmp_path / "batch.csv", rows)
        settings = tf.Settings(input_filter="$[1:]", join_source="Input")
        [result] = tf.transform(server.url, [source], tmp_path / "out", settings)
        lines = result.output.read_text().splitlines()
        assert len(lines) == 5000 and all(line.startswith(f"id-{i},{ROW},") for i, line in enumerate(lines))
        assert len({line.rsplit(",", 1)[1] for line in lines}) == 1
        # The server's /execution-parameters: two workers, two requests in flight.
        _monitor_reads_the_batch(run, result.output, tmp_path)
        client = tf.Client(server.url, settings)
        assert tf.execution_parameters(client)["MaxConcurrentTransforms"] == 2
        client.close()
        rows[4321] = "id-4321,M,abc,0.365,0.095,0.514,0.2245,0.101,0.15"
        _write(source, rows)
        with pytest.raises(tf.TransformError, match=r"line 4322: the container refused the record \(400"):
            tf.transform(server.url, [source], tmp_path / "out2", settings)
        assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").iterdir())
    finally:
        server.stop()


def _monitor_reads_the_batch(run: object, output: Path, tmp_path: Path) -> None:
    """The monitor job over the joined output: every row checked for drift, and the ground
    truth keyed by row id joined with its prediction."""
    from mlcontainer import capture

    truth = tmp_path / "truth" / "labels.jsonl"
    truth.parent.mkdir()
    truth.write_text("".join(json.dumps(capture.ground_truth_record([9.0], f"id-{i}")) + "\n"
                             for i in range(0, 5000, 2)))
    report_dir = tmp_path / "monitoring"
    local.run_step("monitor", run.jobs, "--capture", str(output.parent), "--ground-truth",
                   str(truth.parent), "--output", str(report_dir), "--input-format", "batch")
    report = json.loads((report_dir / "report.json").read_text())
    assert report["records"]["rows"] == 5000 and report["records"]["malformed_rows"] == 0
    assert report["drift"]["judged"] and report["model_quality"]["rows"] == 2500
    assert report["model_quality"]["judged"]
