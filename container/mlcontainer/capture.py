"""Reading what a SageMaker endpoint captured, and the ground truth uploaded for it.

Data capture writes JSON Lines files under ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/``,
one record per request (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html)::

    {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "M,0.455,...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "9.87", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "...", "inferenceId": "...", "inferenceTime": "2024-05-01T10:00:01Z"},
     "eventVersion": "0"}

``inferenceId`` is there when the caller sent ``X-Amzn-SageMaker-Inference-Id``. Ground truth
follows Model Monitor's format (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-merge.html)::

    {"groundTruthData": {"data": "12", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the request's inferenceId, else its eventId>"},
     "eventVersion": "0"}

A request may hold several rows; its ground truth then holds one label per row, in order
(``"data": "12\\n9"``, or a JSON list with ``"encoding": "JSON"``).

Reading is lenient where a data-quality check needs it: a row with an empty, unreadable or
out-of-contract value is counted, never a reason to stop. Requests whose inference id starts
with the synthetic prefix (the deployment hooks' and smoke tests') are counted and left out.
Records are filtered by ``eventMetadata.inferenceTime``: the data-quality window is
``[start, end)``; predictions from ``[start - lookback, end)`` can be joined with labels.
A batch transform's output (``read_batch``) is read as traffic too: one record per joined
line, keyed by the row id that leads it, with no time window.
Speed matters (an hour of a busy endpoint is 10^5 records): a record costs one
``json.loads`` and a few string operations; numbers are converted per column with NumPy.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: The prefix of the inference ids of synthetic requests (``contract.SYNTHETIC_INFERENCE_ID_PREFIX``;
#: the deploy stack passes it to the job, this is only the default of local runs).
SYNTHETIC_PREFIX = "synthetic-"
N_FEATURES = 8
N_COLUMNS = 9
_TIME = "%Y-%m-%dT%H:%M:%S"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip())  # "Z" reads as UTC (Python 3.11+)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def time_key(value: datetime) -> str:
    """The sortable 19-character form records are compared in (whole seconds, UTC)."""
    return value.astimezone(UTC).strftime(_TIME)


@dataclass(frozen=True)
class Window:
    """``[start, end)`` of the data-quality check and ``[join_start, end)`` of the
    predictions ground truth may label; ``None`` bounds are open."""

    start: datetime | None = None
    end: datetime | None = None
    lookback: timedelta = timedelta(0)

    def keys(self) -> tuple[str, str, str]:
        low = "0000-00-00T00:00:00"
        start = time_key(self.start) if self.start else low
        join = time_key(self.start - self.lookback) if self.start else low
        end = time_key(self.end) if self.end else "9999-99-99T99:99:99"
        return join, start, end


def _record_time(text: Any) -> str | None:
    """``inferenceTime`` in the form of :func:`time_key`; fast for SageMaker's own
    ``...Z`` form, parsed for anything else; ``None`` when unreadable."""
    if not isinstance(text, str):
        return None
    if len(text) >= 20 and text[10] == "T" and text[-1] == "Z":
        return text[:19]
    try:
        return time_key(parse_time(text))
    except ValueError:
        return None


def payload_text(part: Any) -> tuple[str, bool] | None:
    """(text, is_json) of a capture part or ground-truth part; ``None`` if unreadable."""
    if not isinstance(part, dict) or not isinstance(part.get("data"), str):
        return None
    data, encoding = part["data"], str(part.get("encoding", "CSV")).upper()
    kind = str(part.get("observedContentType", "")).lower()
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return data, "json" in kind
    return data, encoding == "JSON" or (encoding != "CSV" and "json" in kind)


def _csv_rows(text: str) -> Iterator[list[str]]:
    lines = text.splitlines()
    quoted = '"' in text
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        fields = next(csv.reader([line])) if quoted else line.split(",")
        if index == 0 and fields[0].strip().lower() == "sex":
            continue  # a header line
        yield fields


def _json_value(value: Any) -> Any:
    """A JSON cell as the column conversion reads it: numbers stay, null is missing,
    anything else (booleans, lists) is kept as text, which is invalid."""
    if value is None:
        return ""
    if isinstance(value, (bool, list, dict)):
        return json.dumps(value)
    return value


def input_rows(text: str, is_json: bool, columns: tuple[str, ...]) -> tuple[list[list[Any]], int]:
    """(rows of 8 raw values, rows with the wrong shape) of one request body."""
    good: list[list[Any]] = []
    bad = 0
    if is_json:
        try:
            document = json.loads(text)
        except ValueError:
            return good, 1
        instances = document.get("instances") if isinstance(document, dict) else document
        if not isinstance(instances, list):
            return good, 1
        for instance in instances:
            if isinstance(instance, dict):
                good.append([_json_value(instance.get(name)) for name in columns])
            elif isinstance(instance, list) and len(instance) in (N_FEATURES, N_COLUMNS):
                good.append([_json_value(v) for v in instance[:N_FEATURES]])
            else:
                bad += 1
        return good, bad
    for fields in _csv_rows(text):
        if len(fields) in (N_FEATURES, N_COLUMNS):
            good.append(fields[:N_FEATURES])
        else:
            bad += 1
    return good, bad


def numbers(text: str, is_json: bool) -> list[float] | None:
    """The numbers of a prediction or label payload (CSV lines or commas; JSON number,
    list, or ``{"predictions": [...]}``); ``None`` when it holds anything else."""
    try:
        if is_json:
            value = json.loads(text)
            if isinstance(value, dict):
                value = value.get("predictions")
            items = value if isinstance(value, list) else [value]
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
                return None
            return [float(v) for v in items]
        return [float(v) for v in text.replace(",", "\n").split()]
    except (ValueError, TypeError):
        return None


@dataclass
class Traffic:
    """What the capture files of a window held, by kind of record and as columns."""

    files: int = 0
    lines: int = 0
    unreadable: int = 0
    synthetic: int = 0
    outside: int = 0
    records: int = 0
    malformed_rows: int = 0
    failed_answers: int = 0
    rows: list[list[Any]] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)
    #: join key -> predictions of the record (window and lookback), for ground truth
    answers: dict[str, list[float]] = field(default_factory=dict)
    duplicate_ids: int = 0

    def add(self, record: Any, keys: tuple[str, str, str], prefix: str, columns: tuple[str, ...]) -> None:
        """Long because each branch counts one kind of record the report shows."""
        meta = record.get("eventMetadata") if isinstance(record, dict) else None
        capture = record.get("captureData") if isinstance(record, dict) else None
        if not isinstance(meta, dict) or not isinstance(capture, dict):
            self.unreadable += 1
            return
        when = _record_time(meta.get("inferenceTime"))
        join, start, end = keys
        if when is None:
            self.unreadable += 1
            return
        if not join <= when < end:
            self.outside += 1
            return
        inference_id = meta.get("inferenceId")
        if isinstance(inference_id, str) and inference_id.startswith(prefix):
            self.synthetic += when >= start
            return
        answer = payload_text(capture.get("endpointOutput"))
        predicted = numbers(*answer) if answer else None
        in_window = when >= start
        if in_window:
            self.records += 1
            body = payload_text(capture.get("endpointInput"))
            rows, bad = input_rows(*body, columns) if body else ([], 1)
            self.rows += rows
            self.malformed_rows += bad
            if predicted is None:
                self.failed_answers += 1
            else:
                self.predictions += predicted
        key = inference_id if isinstance(inference_id, str) and inference_id else meta.get("eventId")
        if predicted is not None and isinstance(key, str):
            if key in self.answers:
                self.duplicate_ids += 1
            else:
                self.answers[key] = predicted


def jsonl_files(directory: Path) -> list[Path]:
    """Every file under ``directory`` (manifest inputs keep S3's folders), sorted."""
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def _lines(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            yield from handle


def read_capture(directory: Path, window: Window, columns: tuple[str, ...],
                 prefix: str = SYNTHETIC_PREFIX) -> Traffic:
    """The window's traffic from every capture file under ``directory``."""
    traffic = Traffic()
    files = jsonl_files(directory)
    traffic.files = len(files)
    keys = window.keys()
    loads = json.loads
    for line in _lines(files):
        if not line.strip():
            continue
        traffic.lines += 1
        try:
            record = loads(line)
        except ValueError:
            traffic.unreadable += 1
            continue
        traffic.add(record, keys, prefix, columns)
    return traffic


def read_batch(directory: Path) -> Traffic:
    """A batch transform's joined output under ``directory`` as traffic: every line is a
    record ``<row id>,<8 features>,<prediction>`` (``JoinSource: Input`` after the input's
    leading row id); the row id is the join key of the batch's ground truth."""
    traffic = Traffic()
    files = jsonl_files(directory)
    traffic.files = len(files)
    for line in _lines(files):
        if not line.strip():
            continue
        traffic.lines += 1
        traffic.records += 1
        fields = next(csv.reader([line])) if '"' in line else line.rstrip("\r\n").split(",")
        if len(fields) != N_FEATURES + 2:
            traffic.malformed_rows += 1
            continue
        traffic.rows.append(fields[1:1 + N_FEATURES])
        try:
            predicted = [float(fields[-1])]
        except ValueError:
            traffic.failed_answers += 1
            continue
        traffic.predictions += predicted
        if fields[0] in traffic.answers:
            traffic.duplicate_ids += 1
        else:
            traffic.answers[fields[0]] = predicted
    return traffic


@dataclass
class GroundTruth:
    """Labels by join key, and what could not be read."""

    files: int = 0
    records: int = 0
    unreadable: int = 0
    duplicates: int = 0
    labels: dict[str, list[float]] = field(default_factory=dict)


def read_ground_truth(directory: Path) -> GroundTruth:
    """Every ground-truth record under ``directory`` (the first label of a key wins)."""
    truth = GroundTruth()
    files = jsonl_files(directory)
    truth.files = len(files)
    for line in _lines(files):
        if not line.strip():
            continue
        truth.records += 1
        try:
            record = json.loads(line)
            meta = record["eventMetadata"]
            key = meta.get("inferenceId") or meta["eventId"]
            payload = payload_text(record["groundTruthData"])
        except (ValueError, KeyError, TypeError, AttributeError):
            truth.unreadable += 1
            continue
        values = numbers(*payload) if payload else None
        if not isinstance(key, str) or values is None:
            truth.unreadable += 1
        elif key in truth.labels:
            truth.duplicates += 1
        else:
            truth.labels[key] = values
    return truth


# -- writing: what SageMaker writes, for local runs, tests and the benchmark -----------------


def _part(body: str, content_type: str, mode: str) -> dict[str, str]:
    encoding = "JSON" if "json" in content_type else "CSV"
    return {"observedContentType": content_type, "mode": mode, "data": body, "encoding": encoding}


def capture_record(request: str, answer: str, when: datetime, event_id: str,
                   inference_id: str | None = None, content_type: str = "text/csv",
                   accept: str = "text/csv") -> dict[str, Any]:
    """One data-capture record as SageMaker writes it (see the module docstring)."""
    meta: dict[str, str] = {"eventId": event_id}
    if inference_id is not None:
        meta["inferenceId"] = inference_id
    meta["inferenceTime"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    return {"captureData": {"endpointInput": _part(request, content_type, "INPUT"),
                            "endpointOutput": _part(answer, accept, "OUTPUT")},
            "eventMetadata": meta, "eventVersion": "0"}


def ground_truth_record(labels: list[float], event_id: str) -> dict[str, Any]:
    """One ground-truth record in Model Monitor's format (see the module docstring)."""
    return {"groundTruthData": {"data": "\n".join(repr(float(v)) for v in labels), "encoding": "CSV"},
            "eventMetadata": {"eventId": event_id}, "eventVersion": "0"}


def capture_path(root: Path, endpoint: str, when: datetime, name: str,
                 variant: str = "AllTraffic") -> Path:
    """Where SageMaker puts a capture file: ``<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/``."""
    return root / endpoint / variant / when.astimezone(UTC).strftime("%Y/%m/%d/%H") / name


def hour_path(root: Path, when: datetime, name: str) -> Path:
    """Where ground truth collected at ``when`` goes: ``<root>/yyyy/mm/dd/hh/<name>``."""
    return root / when.astimezone(UTC).strftime("%Y/%m/%d/%H") / name
