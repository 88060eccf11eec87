"""Batch transform on this machine: drive a serving container over files the way SageMaker
batch transform drives it (``make batch``, tests, the benchmark).

What a transform job does with the container (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-batch-code.html,
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html), and
what this module does the same way:

* ``GET /execution-parameters`` first: the container's ``MaxConcurrentTransforms``,
  ``BatchStrategy`` and ``MaxPayloadInMB`` are used where the job leaves them unset; a
  container without the route gets the defaults, one request at a time and 6 MB.
* ``SplitType: Line``: every line of an input file is a record; ``BatchStrategy:
  MultiRecord``: a request carries as many whole records as fit in ``MaxPayloadInMB``, and a
  record larger than that fails the job. ``MaxConcurrentTransforms`` requests are in flight
  at once.
* An invocation that fails with a 5xx status or a broken connection is retried
  (``ModelClientConfig.InvocationsMaxRetries``, default 3); a 4xx answer fails the job. The
  record at fault is found by bisecting the failed mini-batch, and the job fails naming its
  line, as SageMaker's log names the failing record.
* ``DataProcessing`` (https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html):
  ``InputFilter`` picks the columns sent to the model (``$[1:]``: all but the leading row
  id), ``JoinSource: Input`` appends each prediction to its whole input record (CSV: after a
  comma), ``OutputFilter`` picks the columns written. For CSV the JSONPath is over the
  record's columns as an array: ``$``, ``$[i]``, ``$[i:j]``, ``$[i,j,...]`` (negative
  indexes count from the end).
* ``AssembleWith: Line``: the output of ``<name>`` is ``<name>.out``, one line per input
  record, in input order. It is written to a temporary file and renamed when the whole file
  succeeded: a failed job leaves no output behind.

Usage: ``python -m mlcontainer.transform --url http://127.0.0.1:8080 INPUT... --output DIR``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from urllib.parse import urlsplit

MB = 1024 * 1024
#: What a job uses when neither it nor the container says (CreateTransformJob: 6 MB, 1).
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_CONCURRENCY = 1
#: ``ModelClientConfig`` defaults: retries of a failed invocation, seconds per invocation.
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT_SECONDS = 600
OUTPUT_SUFFIX = ".out"

Filter = Callable[[bytes], bytes]


class TransformError(Exception):
    """The job failed: ``line`` is the 1-based line of the input file at fault, if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Settings:
    """How the job drives the container (the CreateTransformJob fields of the same name)."""

    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB
    max_concurrent_transforms: int = DEFAULT_CONCURRENCY
    batch_strategy: str = "MultiRecord"
    content_type: str = "text/csv"
    accept: str = "text/csv"
    input_filter: str = "$"
    join_source: str = "None"
    output_filter: str = "$"
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True)
class Result:
    source: Path
    output: Path
    records: int
    requests: int
    seconds: float


# -- filters --------------------------------------------------------------------------------

_FILTER = re.compile(r"^\$(?:\[(-?\d+)?(:)?(-?\d+)?\]|\[(-?\d+(?:\s*,\s*-?\d+)+)\])?$")


def column_filter(expression: str) -> Filter:
    """The CSV columns a ``$``-JSONPath of DataProcessing selects, as a function of a record."""
    match = _FILTER.match(expression.strip())
    if not match:
        raise TransformError(f"filter {expression!r}: use $, $[i], $[i:j] or $[i,j,...] for CSV")
    start, colon, stop, listed = match.groups()
    if start is None and colon is None and stop is None and listed is None:
        return lambda record: record
    if listed is not None:
        picks = [int(i) for i in listed.split(",")]
        return lambda record: b",".join(_pick(record.split(b","), picks))
    if colon is None:
        index = int(start)
        return lambda record: b",".join(_pick(record.split(b","), [index]))
    first, last = int(start or 0), None if stop is None else int(stop)
    if last is None and first > 0:
        # The common case ($[1:], drop the row id) without splitting every column.
        return lambda record: _tail(record, first)
    return lambda record: b",".join(record.split(b",")[first:last])


def _pick(columns: list[bytes], picks: list[int]) -> list[bytes]:
    try:
        return [columns[i] for i in picks]
    except IndexError:
        raise ValueError(f"the record has {len(columns)} columns") from None


def _tail(record: bytes, first: int) -> bytes:
    parts = record.split(b",", first)
    if len(parts) <= first:
        raise ValueError(f"the record has {len(parts)} columns")
    return parts[first]


# -- the container ------------------------------------------------------------------------------


class Client:
    """HTTP/1.1 keep-alive connections to the container, one per thread."""

    def __init__(self, url: str, settings: Settings) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 8080
        self.settings = settings
        self.local = threading.local()
        self.requests = 0
        self._count = threading.Lock()
        self._opened: list[http.client.HTTPConnection] = []

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.settings.timeout)
            self.local.connection = connection
            with self._count:
                self._opened.append(connection)
        return connection

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """One request; a broken connection raises OSError (http.client's errors included)."""
        connection = self._connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            self.local.connection = None
            raise OSError(f"{method} {path}: {err}") from err

    def close(self) -> None:
        """Close every connection the threads opened."""
        with self._count:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def invoke(self, body: bytes) -> tuple[int, bytes]:
        """POST /invocations, retried on 5xx and broken connections; (status, body)."""
        headers = {"Content-Type": self.settings.content_type, "Accept": self.settings.accept}
        attempt = 0
        while True:
            with self._count:
                self.requests += 1
            try:
                status, answer = self.request("POST", "/invocations", body, headers)
            except OSError as err:
                status, answer = 0, str(err).encode()
            if status < 500 and status != 0:
                return status, answer
            if attempt >= self.settings.retries:
                return status, answer
            attempt += 1
            time.sleep(min(0.05 * 2 ** attempt, 2.0))


def execution_parameters(client: Client) -> dict[str, object] | None:
    """The container's ``GET /execution-parameters``, or None when it has no such route."""
    try:
        status, body = client.request("GET", "/execution-parameters")
    except OSError as err:
        raise TransformError(f"the container does not answer: {err}") from None
    if status != 200:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        raise TransformError(f"GET /execution-parameters answered no JSON: {body[:200]!r}") from None
    return answer if isinstance(answer, dict) else None


def resolve(client: Client, settings: Settings, given: set[str]) -> Settings:
    """``settings`` with what the container says where the job did not set it (``given``)."""
    answer = execution_parameters(client) or {}
    changes: dict[str, object] = {}
    if "max_payload_mb" not in given and isinstance(answer.get("MaxPayloadInMB"), int):
        changes["max_payload_mb"] = answer["MaxPayloadInMB"]
    if "max_concurrent_transforms" not in given and isinstance(answer.get("MaxConcurrentTransforms"), int):
        changes["max_concurrent_transforms"] = answer["MaxConcurrentTransforms"]
    if "batch_strategy" not in given and answer.get("BatchStrategy") in ("MULTI_RECORD", "SINGLE_RECORD"):
        changes["batch_strategy"] = "MultiRecord" if answer["BatchStrategy"] == "MULTI_RECORD" else "SingleRecord"
    return replace(settings, **changes)  # type: ignore[arg-type]


# -- one file ---------------------------------------------------------------------------------


def batch_spans(body: bytes, max_bytes: int, multi: bool = True) -> list[tuple[int, int, int, int]]:
    """The mini-batches of ``body`` (the records joined by newlines), as ``(first record, end
    record, first byte, end byte)``: each ends at a record's end and holds as many whole
    records as fit in ``max_bytes`` (one with ``multi=False``). Found with ``rfind`` and
    ``count`` over the bytes, not record by record. A record over ``max_bytes`` raises
    :class:`TransformError` with its index as ``line``."""
    spans: list[tuple[int, int, int, int]] = []
    start, record, size = 0, 0, len(body)
    while True:
        if not multi:
            end = body.find(b"\n", start)
            end = size if end < 0 else end
        elif start + max_bytes >= size:
            end = size
        else:
            end = body.rfind(b"\n", start, start + max_bytes + 1)
        if end < 0 or end - start > max_bytes:
            stop = body.find(b"\n", start)
            length = (size if stop < 0 else stop) - start
            raise TransformError(f"record of {length} bytes exceeds MaxPayloadInMB "
                                 f"({max_bytes // MB} MB)", record)
        count = body.count(b"\n", start, end) + 1
        spans.append((record, record + count, start, end))
        record += count
        if end >= size:
            return spans
        start = end + 1


def _answers(client: Client, body: bytes, count: int) -> list[bytes] | tuple[int, bytes]:
    status, answer = client.invoke(body)
    if status != 200:
        return status, answer
    lines = answer.splitlines()
    if len(lines) != count:
        raise TransformError(f"the container answered {len(lines)} predictions for {count} records")
    return lines


def _bad_record(client: Client, payloads: list[bytes], start: int, end: int) -> tuple[int, int, bytes]:
    """The first record of ``[start, end)`` the container refuses on its own, by bisection."""
    while end - start > 1:
        middle = (start + end) // 2
        got = _answers(client, b"\n".join(payloads[start:middle]), middle - start)
        if isinstance(got, tuple):
            end = middle
        else:
            start = middle
    got = _answers(client, b"\n".join(payloads[start:end]), 1)
    status, answer = got if isinstance(got, tuple) else (400, b"refused only with its neighbours")
    return start, status, answer


def _message(answer: bytes) -> str:
    try:
        return str(json.loads(answer)["message"])
    except (ValueError, KeyError, TypeError):
        return answer.decode("utf-8", "replace").strip()[:500]


def _predict(client: Client, payloads: list[bytes], body: bytes, span: tuple[int, int, int, int],
             lines: list[int] | range) -> list[bytes]:
    start, end, first_byte, end_byte = span
    got = _answers(client, body[first_byte:end_byte], end - start)
    if not isinstance(got, tuple):
        return got
    status, answer = got
    if status >= 500 or status == 0:
        raise TransformError(f"invocation failed after {client.settings.retries} retries "
                             f"(lines {lines[start]}-{lines[end - 1]}): {status} {_message(answer)}")
    index, status, answer = _bad_record(client, payloads, start, end)
    raise TransformError(f"line {lines[index]}: the container refused the record "
                         f"({status}: {_message(answer)})", lines[index])


def _records(data: bytes) -> tuple[list[bytes], list[int] | range]:
    """The non-empty lines (``\\r\\n`` or ``\\n``) and their 1-based line numbers."""
    if data and b"\r" not in data and b"\n\n" not in data and not data.startswith(b"\n"):
        # No empty line, no carriage return: every line is a record, numbered in order.
        return data.removesuffix(b"\n").split(b"\n"), range(1, data.rstrip(b"\n").count(b"\n") + 2)
    records, lines = [], []
    for number, line in enumerate(data.split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if line:
            records.append(line)
            lines.append(number)
    return records, lines


def _filtered(records: list[bytes], lines: list[int] | range, expression: str, what: str) -> list[bytes]:
    pick = column_filter(expression)
    if expression.strip() == "$":
        return records
    start, colon, stop, _ = _FILTER.match(expression.strip()).groups()  # type: ignore[union-attr]
    first = int(start) if start is not None and colon and stop is None else 0
    try:
        if first > 0:  # $[k:]: one split per record, in a comprehension (the common case, fast)
            return [record.split(b",", first)[first] for record in records]
        return [pick(record) for record in records]
    except (ValueError, IndexError):
        for record, line in zip(records, lines, strict=True):
            try:
                pick(record)
            except ValueError as err:
                raise TransformError(f"line {line}: {what} {expression} does not apply: {err}", line) from None
        raise


def transform_file(client: Client, source: Path, output_dir: Path) -> Result:
    """Transform one file into ``output_dir/<name>.out`` (see the module docstring)."""
    settings = client.settings
    started = time.perf_counter()
    records, lines = _records(source.read_bytes())
    payloads = _filtered(records, lines, settings.input_filter, "InputFilter")
    body = b"\n".join(payloads)
    try:
        spans = batch_spans(body, settings.max_payload_mb * MB,
                            settings.batch_strategy == "MultiRecord") if payloads else []
    except TransformError as err:
        raise TransformError(f"line {lines[err.line or 0]}: {err}", lines[err.line or 0]) from None
    before = client.requests
    workers = max(1, settings.max_concurrent_transforms)
    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(lambda span: _predict(client, payloads, body, span, lines), spans))
    predictions = list(chain.from_iterable(answers))
    if settings.join_source == "Input":
        # b",".join of each (record, prediction) pair, the loop in C
        joined = list(map(b",".join, zip(records, predictions, strict=True)))
    else:
        joined = predictions
    out = _filtered(joined, lines, settings.output_filter, "OutputFilter")
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / (source.name + OUTPUT_SUFFIX)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(b"\n".join(out) + b"\n" if out else b"")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return Result(source, target, len(records), client.requests - before,
                  time.perf_counter() - started)


def input_files(paths: list[Path]) -> list[Path]:
    """The files given, and every file under the folders given (S3Prefix), sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise TransformError(f"{path}: no such file or folder")
    return files


def transform(url: str, inputs: list[Path], output_dir: Path, settings: Settings,
              given: set[str] | None = None) -> list[Result]:
    """Transform every input file; the first failure stops the job (TransformError)."""
    probe = Client(url, settings)
    try:
        client = Client(url, resolve(probe, settings, given or set()))
    finally:
        probe.close()
    results = []
    try:
        for source in input_files(inputs):
            try:
                results.append(transform_file(client, source, output_dir))
            except TransformError as err:
                raise TransformError(f"{source}: {err}", err.line) from None
    finally:
        client.close()
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlcontainer.transform", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="input files or folders")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the serving container")
    parser.add_argument("--output", type=Path, required=True, help="folder of the .out files")
    parser.add_argument("--max-payload-mb", type=int, help="default: the container's, else 6")
    parser.add_argument("--max-concurrent-transforms", type=int, help="default: the container's, else 1")
    parser.add_argument("--batch-strategy", choices=("MultiRecord", "SingleRecord"))
    parser.add_argument("--input-filter", default="$")
    parser.add_argument("--join-source", choices=("Input", "None"), default="None")
    parser.add_argument("--output-filter", default="$")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = {name for name in ("max_payload_mb", "max_concurrent_transforms", "batch_strategy")
             if getattr(args, name) is not None}
    settings = Settings(**{name: getattr(args, name) for name in given},  # type: ignore[arg-type]
                        input_filter=args.input_filter, join_source=args.join_source,
                        output_filter=args.output_filter, retries=args.retries)
    try:
        results = transform(args.url, args.inputs, args.output, settings, given)
    except TransformError as err:
        print(f"transform failed: {err}", file=sys.stderr)
        return 1
    for result in results:
        print(f"{result.source} -> {result.output}: {result.records} records in "
              f"{result.requests} requests, {result.seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
