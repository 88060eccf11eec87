"""``POST /invocations``: content negotiation, request parsing, answer formatting.

Pure functions over bytes, independent of the HTTP server, so they are tested and
benchmarked in-process.

Requests (``Content-Type``):

* ``text/csv`` (also the default when the header is missing): one raw row per line,
  ``sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight``,
  optionally followed by ``rings`` (ignored), optionally under a header line naming the
  columns. ``sex`` is ``M``, ``F`` or ``I``.
* ``application/json``: ``{"instances": [...]}`` or a bare list of instances; an
  instance is a list of the values above in that order, or an object keyed by column
  name: ``{"sex": "M", "length": 0.455, ...}``. Measurements are JSON numbers.

Answers (``Accept``): ``text/csv`` (default; one prediction per line) or
``application/json`` (``{"predictions": [9.87, ...]}``). A prediction is the estimated
number of rings, with 7 significant digits.

Bodies are UTF-8 (a leading byte-order mark is dropped); a ``charset`` parameter may
also say ``us-ascii`` or ``iso-8859-1``. JSON is read strictly: no ``NaN`` or
``Infinity``, no key twice in one object.

Every bad request raises :class:`RequestError` with an HTTP status (400 bad data or JSON,
406 unsupported Accept, 413 too large, 415 unsupported Content-Type or charset) and a
one-line message, whatever the body holds (nesting thousands of levels deep, numbers past
float's range, invalid UTF-8, ...).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from mlcontainer.errors import DataError, UserError
from mlcontainer.model import Predictor
from mlcontainer.schema import parse_csv, parse_instances

CSV = "text/csv"
JSON = "application/json"
SUPPORTED = (CSV, JSON)
#: ``charset`` values a body may declare, to the codecs that decode them. All three are
#: built into the interpreter: decoding never imports a codec (workers run unprivileged).
CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "ascii", "ascii": "ascii",
            "iso-8859-1": "latin-1", "latin-1": "latin-1", "latin1": "latin-1"}
_CHARSET_NAMES = {"utf-8": "UTF-8", "ascii": "US-ASCII", "latin-1": "ISO-8859-1"}
_BOM = b"\xef\xbb\xbf"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (send finite numbers)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return value


#: Strict JSON: NaN/Infinity and repeated keys (which json.loads accepts) are errors.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_reject_constant)


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    """The request's media type, lower-case, parameters dropped; CSV when absent."""
    if not content_type:
        return CSV
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in SUPPORTED:
        raise RequestError(415, f"unsupported Content-Type {content_type!r}; "
                                f"send {' or '.join(SUPPORTED)}")
    return kind


def body_encoding(content_type: str | None) -> str:
    """The codec for a body from the ``charset`` parameter of its ``Content-Type``
    (UTF-8 when there is none)."""
    if not content_type or ";" not in content_type:
        return "utf-8"
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in CHARSETS:
                raise RequestError(415, f"unsupported charset {value.strip()[:40]!r} in "
                                        "Content-Type; send UTF-8")
            return CHARSETS[charset]
    return "utf-8"


def accept_type(accept: str | None) -> str:
    """The answer's media type from an ``Accept`` header (q-values honoured)."""
    if not accept or accept in ("*/*", CSV):
        return CSV
    if accept == JSON:
        return JSON
    choices = []
    for position, item in enumerate(accept.split(",")):
        kind, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            choices.append((-quality, position, kind.lower()))
    for _, _, kind in sorted(choices):
        if kind in SUPPORTED:
            return kind
        if kind in ("*/*", "text/*"):
            return CSV
        if kind == "application/*":
            return JSON
    raise RequestError(406, f"cannot answer in {accept!r}; accept {' or '.join(SUPPORTED)}")


def _json_error(err: ValueError) -> RequestError:
    reason = str(err)
    if "integer string conversion" in reason:  # int()'s guard against huge digit strings
        reason = f"a number has more than {sys.get_int_max_str_digits()} digits"
    return RequestError(400, f"malformed JSON: {reason}")


def parse_body(body: bytes, kind: str, encoding: str = "utf-8"):
    """Validated rows of a request body."""
    body = body.removeprefix(_BOM)
    if not body.strip():
        raise RequestError(400, "empty request body: send one or more rows")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as err:
        raise RequestError(400, f"the body is not {_CHARSET_NAMES.get(encoding, encoding)} text "
                                f"({err.reason} at byte {err.start})") from None
    try:
        if kind == CSV:
            return parse_csv(text, where="request body", label="optional")
        try:
            document = _DECODER.decode(text)
        except ValueError as err:
            raise _json_error(err) from None
        except RecursionError:  # the C decoder's guard: the error path only
            raise RequestError(400, "malformed JSON: nested too deeply (instances are lists "
                                    "of values, 2 or 3 levels deep)") from None
        if isinstance(document, dict):
            if "instances" not in document:
                raise RequestError(400, 'JSON body must be {"instances": [...]} or a list of '
                                        "instances")
            document = document["instances"]
        return parse_instances(document, where="request body")
    except DataError as err:
        raise RequestError(400, str(err)) from None


def format_predictions(values, kind: str) -> bytes:
    # One %-format call over all values: the loop runs in C.
    numbers = tuple(values.tolist())
    if kind == CSV:
        return (("%.7g\n" * len(numbers)) % numbers).encode()
    return ('{"predictions":[' + ("%.7g," * len(numbers))[:-1] % numbers + "]}").encode()


class InvocationHandler:
    """Answers ``/invocations`` bodies with a loaded :class:`Predictor`."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def __call__(self, body: bytes, content_type: str | None,
                 accept: str | None) -> tuple[str, bytes]:
        """(answer media type, answer body); raises :class:`RequestError`."""
        kind = media_type(content_type)
        answer = accept_type(accept)
        rows = parse_body(body, kind, body_encoding(content_type))
        try:
            predictions = self.predictor.predict(rows)
        except UserError as err:
            raise RequestError(400, str(err)) from None
        return answer, format_predictions(predictions, answer)


def execution_parameters(workers: int, max_bytes: int) -> dict[str, Any]:
    """``GET /execution-parameters``: what batch transform may send to this container."""
    return {"MaxConcurrentTransforms": workers, "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, max_bytes // (1024 * 1024))}
