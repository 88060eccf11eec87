"""``POST /invocations``'s content negotiation and body reading, answer for answer: which
media type and codec a request's headers select, the 4xx status and message of each
refusal (415 Content-Type or charset, 406 Accept, 400 body), and the answer's bytes.

The messages are the bodies clients (and the pipeline's traffic hooks) read; they are
written out here in full.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))

from mlcontainer import inference
from mlcontainer.errors import UserError

CSV, JSON = "text/csv", "application/json"
SEND = "send text/csv or application/json"


@pytest.mark.parametrize(("content_type", "kind"), [
    (None, CSV), ("", CSV), ("text/csv", CSV), ("Text/CSV; charset=utf-8", CSV),
    (" application/json ", JSON), ("application/json;charset=utf-8", JSON),
    ("text/csv; charset=utf-8; header=present", CSV), ("application/json", JSON),
])
def test_the_request_media_type_is_read_without_its_parameters(content_type: str | None, kind: str) -> None:
    assert inference.media_type(content_type) == kind


@pytest.mark.parametrize(("content_type", "message"), [
    ("text/plain", f"unsupported Content-Type 'text/plain'; {SEND}"),
    ("application/x-www-form-urlencoded; a=b", f"unsupported Content-Type 'application/x-www-form-urlencoded; a=b'; {SEND}"),
    ("text/csvx", f"unsupported Content-Type 'text/csvx'; {SEND}"),
    ("application/x-www-form-urlencoded", f"unsupported Content-Type 'application/x-www-form-urlencoded'; {SEND}"),
])
def test_another_media_type_is_415(content_type: str, message: str) -> None:
    with pytest.raises(inference.RequestError) as caught:
        inference.media_type(content_type)
    assert (caught.value.status, caught.value.message, str(caught.value)) == (415, message, message)


@pytest.mark.parametrize(("content_type", "codec"), [
    (None, "utf-8"), ("text/csv", "utf-8"), ("text/csv; foo", "utf-8"), ("text/csv; charset=UTF-8", "utf-8"),
    ("text/csv; charset=utf8", "utf-8"), ('text/csv; charset="iso-8859-1"', "latin-1"),
    ("text/csv;charset=latin1", "latin-1"), ("text/csv; a=b; Charset = us-ascii", "ascii"),
    ("application/json; charset=ASCII", "ascii"), ('application/json;charset="utf8"', "utf-8"),
    ("text/csv; header=present", "utf-8"), ("text/csv; charset=US-ASCII", "ascii"),
    ("text/csv ; Charset = iso-8859-1", "latin-1"),
])
def test_the_body_codec_is_the_charset_parameter_or_utf8(content_type: str | None, codec: str) -> None:
    assert inference.body_encoding(content_type) == codec


@pytest.mark.parametrize(("content_type", "shown"), [
    ("text/csv; charset=utf-16", "'utf-16'"),
    ("text/csv; charset=" + "x" * 60, "'" + "x" * 40 + "'"),
    ('text/csv; charset="EBCDIC" ', "'\"EBCDIC\"'"),
    ("text/csv; charset=Xutf-8X", "'Xutf-8X'"),  # only quotes are stripped from the value
    ("text/csv; charset=utf-8=x", "'utf-8=x'"),  # the value is all after the first '='
    ("text/csv; charset=", "''"), ("application/json; charset=cp1252", "'cp1252'"),
])
def test_another_charset_is_415(content_type: str, shown: str) -> None:
    with pytest.raises(inference.RequestError) as caught:
        inference.body_encoding(content_type)
    assert (caught.value.status, caught.value.message) == (415, f"unsupported charset {shown} in Content-Type; send UTF-8")


@pytest.mark.parametrize(("accept", "kind"), [
    (None, CSV), ("", CSV), ("*/*", CSV), ("text/csv", CSV), ("application/json", JSON),
    ("application/json;q=0.5, text/csv;q=0.4", JSON), ("text/csv;q=0.4, application/json;q=0.5", JSON),
    ("application/xml, */*;q=0.1", CSV), ("text/*", CSV), ("application/*", JSON), ("APPLICATION/JSON;q=1", JSON),
    ("image/png, text/csv", CSV), ("text/html;q=0.9,application/json;q=0.9", JSON),
    ("text/csv;q=0.9, application/json", JSON), ("application/json;Q=0, text/csv", CSV),
    ("text/csv, application/json", CSV), ("application/json, text/csv", JSON),
    ("text/csv;q=1, application/json", CSV),  # no q is q=1: a tie, kept in the client's order
    ("application/json;q==0.5, text/csv;q=0.1", CSV),  # a malformed q is q=0: not acceptable
    ("text/html, application/json;q=0.9", JSON), ("text/csv;q=0.5, application/json", JSON),
    ("text/*;q=1", CSV), ("application/json;q=0, text/csv", CSV),
])
def test_the_answer_type_is_the_best_supported_choice_of_accept(accept: str | None, kind: str) -> None:
    assert inference.accept_type(accept) == kind


@pytest.mark.parametrize("accept", ["application/xml", "text/csv;q=0, application/json;q=bad", "image/*",
                                    "text/html", "application/xml, image/*", "application/json;q=0"])
def test_an_accept_with_no_supported_choice_is_406(accept: str) -> None:
    with pytest.raises(inference.RequestError) as caught:
        inference.accept_type(accept)
    assert (caught.value.status, caught.value.message) == (
        406, f"cannot answer in {accept!r}; accept text/csv or application/json")


@pytest.mark.parametrize(("body", "kind", "codec", "message"), [
    (b"", CSV, "utf-8", "empty request body: send one or more rows"),
    (b"  \n", CSV, "utf-8", "empty request body: send one or more rows"),
    (b"\xef\xbb\xbf", CSV, "utf-8", "empty request body: send one or more rows"),
    (b"M,\xff", CSV, "utf-8", "the body is not UTF-8 text (invalid start byte at byte 2)"),
    (b"M,\xff", CSV, "ascii", "the body is not US-ASCII text (ordinal not in range(128) at byte 2)"),
    (b"{", JSON, "utf-8", "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b'{"a": 1}', JSON, "utf-8", 'JSON body must be {"instances": [...]} or a list of instances'),
    (b"[NaN]", JSON, "utf-8", "malformed JSON: NaN is not valid JSON (send finite numbers)"),
    (b"[-Infinity]", JSON, "utf-8", "malformed JSON: -Infinity is not valid JSON (send finite numbers)"),
    (b'{"a":1,"a":2}', JSON, "utf-8", "malformed JSON: key 'a' appears twice in one object"),
    (b'[{"b":1,"' + b"k" * 50 + b'":1,"' + b"k" * 50 + b'":2}]', JSON, "utf-8",
     "malformed JSON: key '" + "k" * 40 + "' appears twice in one object"),
    (b"[" * 100_000, JSON, "utf-8", "malformed JSON: nested too deeply (instances are lists of values, 2 or 3 levels deep)"),
    (b"[" + b"1" * 5000 + b"]", JSON, "utf-8", "malformed JSON: a number has more than 4300 digits"),
    (b'{"instances": 5}', JSON, "utf-8", "request body: 'instances' must be a list of rows"),
    (b"X,1,2,3,4,5,6,7", CSV, "utf-8", "request body, line 1, column 'sex': unknown value 'X'; expected one of F, I, M"),
    (b"[]", JSON, "utf-8", "request body: no instances"),
])
def test_a_bad_body_is_400_with_its_reason(body: bytes, kind: str, codec: str, message: str) -> None:
    with pytest.raises(inference.RequestError) as caught:
        inference.parse_body(body, kind, codec)
    assert (caught.value.status, caught.value.message) == (400, message)


ROW = [0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]


def test_good_bodies_in_each_form_and_codec_are_read() -> None:
    csv = "M," + ",".join(map(str, ROW))
    for body, kind, codec in [
        (b"\xef\xbb\xbf" + csv.encode(), CSV, "utf-8"),
        (csv.encode("latin-1"), CSV, "latin-1"),
        (b'{"instances": [["M", 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]]}', JSON, "utf-8"),
        (b'[["M", 0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]]', JSON, "ascii"),
    ]:
        rows = inference.parse_body(body, kind, codec)
        assert (rows.sex.tolist(), rows.numeric.tolist()) == ([2], [ROW]), body


def test_predictions_are_written_with_seven_significant_digits() -> None:
    values = np.array([9.87654321, 10.0, 1e-9, 123456789.0])
    assert inference.format_predictions(values, CSV) == b"9.876543\n10\n1e-09\n1.234568e+08\n"
    assert inference.format_predictions(values, JSON) == b'{"predictions":[9.876543,10,1e-09,1.234568e+08]}'
    assert inference.format_predictions(np.array([9.5]), JSON) == b'{"predictions":[9.5]}'


class _Predictor:
    def __init__(self, error: str | None = None) -> None:
        self.error = error

    def predict(self, rows: Any) -> np.ndarray:
        if self.error:
            raise UserError(self.error)
        return np.full(len(rows), 7.25)


def test_an_invocation_negotiates_reads_predicts_and_formats() -> None:
    handler = inference.InvocationHandler(_Predictor())  # type: ignore[arg-type]
    body = ("M," + ",".join(map(str, ROW)) + "\n") * 2
    assert handler(body.encode(), "text/csv; charset=us-ascii", "application/json") == (
        JSON, b'{"predictions":[7.25,7.25]}')
    assert handler(body.encode(), None, None) == (CSV, b"7.25\n7.25\n")
    with pytest.raises(inference.RequestError) as caught:
        handler(body.encode(), "text/csv", "application/xml")
    assert caught.value.status == 406
    refused = inference.InvocationHandler(_Predictor("column 'sex': value 'I' was not seen in training"))  # type: ignore[arg-type]
    with pytest.raises(inference.RequestError) as caught:
        refused(body.encode(), "text/csv", None)
    assert (caught.value.status, caught.value.message) == (400, "column 'sex': value 'I' was not seen in training")


def test_batch_transform_is_told_the_workers_and_the_payload_limit_in_whole_mib() -> None:
    assert inference.execution_parameters(3, 6 * 1024 * 1024) == {
        "MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
    assert inference.execution_parameters(1, 7 * 1024 * 1024 - 1)["MaxPayloadInMB"] == 6
    assert inference.execution_parameters(2, 1024)["MaxPayloadInMB"] == 1  # never 0
