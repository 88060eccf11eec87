"""The data contract's answer to every kind of bad row, word for word.

The model server returns these messages as the body of its 400 (and the jobs write them
where SageMaker shows a failed job's reason), so the text is the interface: it names where
the bad value is (request, line or instance, column), what was there and the rule. The
expected messages are written out here, not built from ``schema``'s constants.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))

from mlcontainer import schema
from mlcontainer.errors import DataError, UserError

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
HEADER = "sex,length,diameter,height,whole_weight,shucked_weight,viscera_weight,shell_weight"
VALUES = [0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]
EIGHT = ("8 columns (sex, length, diameter, height, whole_weight, shucked_weight, viscera_weight, "
         "shell_weight), optionally followed by 'rings'")
NINE = "9 columns (sex, length, diameter, height, whole_weight, shucked_weight, viscera_weight, shell_weight, rings)"
ONE_OF = "expected one of F, I, M"


def _row(position: int, value: str) -> str:
    cells = ROW.split(",")
    cells[position] = value
    return ",".join(cells)


CSV_ERRORS = [
    # (CSV text, label policy, the whole message)
    ("", "optional", "request body: no data rows"),
    (HEADER, "optional", "request body: no data rows"),
    (f"\n{HEADER}\n\n \n", "optional", "request body: no data rows"),
    (f"sex,length,foo\n{ROW}", "optional",
     f"request body, line 1: header must be {HEADER},rings (or without 'rings'), got sex,length,foo"),
    (f"{HEADER}\n{ROW},9", "required", f"request body, line 1: header must be {HEADER},rings, got {HEADER}"),
    ("Sex," + ",".join(f"column_{i}" for i in range(40)) + f"\n{ROW}", "optional",
     f"request body, line 1: header must be {HEADER},rings (or without 'rings'), got sex,"
     + ",".join(f"column_{i}" for i in range(20)) + ",column... (41 columns)"),
    ("M,0.5,0.4", "optional", f"request body, line 1: expected {EIGHT}, got 3"),
    (ROW, "required", f"request body, line 1: expected {NINE}, got 8"),
    (f"{ROW},9,1", "optional", f"request body, line 1: expected {EIGHT}, got 10"),
    (f"{ROW},9\n{ROW},9,1", "required", f"request body, line 2: expected {NINE}, got 10"),
    (_row(0, "X"), "optional", f"request body, line 1, column 'sex': unknown value 'X'; {ONE_OF}"),
    (_row(0, " x "), "optional", f"request body, line 1, column 'sex': unknown value 'x'; {ONE_OF}"),
    (_row(0, "male"), "optional", f"request body, line 1, column 'sex': unknown value 'male'; {ONE_OF}"),
    (_row(1, ""), "optional", "request body, line 1, column 'length': is empty (a number is required)"),
    (_row(1, "  "), "optional", "request body, line 1, column 'length': is empty (a number is required)"),
    (_row(1, "abc"), "optional", "request body, line 1, column 'length': 'abc' is not a number"),
    (_row(2, " abc "), "optional", "request body, line 1, column 'diameter': 'abc' is not a number"),
    (_row(1, "1_000"), "optional", "request body, line 1, column 'length': '1_000' is not a number"),
    (_row(7, "0.15#x"), "optional", "request body, line 1, column 'shell_weight': '0.15#x' is not a number"),
    (f"{ROW},9#", "required", "request body, line 1, column 'rings': '9#' is not a number"),
    (_row(1, "\u0661"), "optional", "request body, line 1, column 'length': '\u0661' is not a number"),
    (_row(1, "y" * 50), "optional",
     "request body, line 1, column 'length': '" + "y" * 40 + "'... (50 characters) is not a number"),
    (_row(1, "y" * 40), "optional", "request body, line 1, column 'length': '" + "y" * 40 + "' is not a number"),
    (_row(2, "-1"), "optional", "request body, line 1, column 'diameter': must be a finite number >= 0, got -1.0"),
    ("M,0,-1,0,0,0,0,0", "optional", "request body, line 1, column 'diameter': must be a finite number >= 0, got -1.0"),
    (_row(3, "nan"), "optional", "request body, line 1, column 'height': must be a finite number >= 0, got nan"),
    (_row(4, "inf"), "optional", "request body, line 1, column 'whole_weight': must be a finite number >= 0, got inf"),
    (f"{ROW},-3", "required", "request body, line 1, column 'rings': must be a finite number >= 0, got -3.0"),
    (f"{ROW},nan", "required", "request body, line 1, column 'rings': must be a finite number >= 0, got nan"),
    (f"{ROW},x", "required", "request body, line 1, column 'rings': 'x' is not a number"),
    (f"\n{ROW}\n\n{_row(7, '-0.15')}", "optional",
     "request body, line 4, column 'shell_weight': must be a finite number >= 0, got -0.15"),
    (f"{HEADER}\n{ROW}\n{_row(5, '-2')}", "optional",
     "request body, line 3, column 'shucked_weight': must be a finite number >= 0, got -2.0"),
    (f"{ROW}\n{ROW},9\n{_row(6, 'z')}", "optional", "request body, line 3, column 'viscera_weight': 'z' is not a number"),
    ('"M",0.455,0.365,0.095,0.514,0.2245,0.101,"' + "9" * 140_000 + '"', "optional",
     "request body, line 1: not valid CSV (field larger than field limit (131072))"),
    ('"M",0.455,0.365,0.095,0.514,0.2245,0.101,"-2"', "optional",
     "request body, line 1, column 'shell_weight': must be a finite number >= 0, got -2.0"),
    ('"X",0.455,0.365,0.095,0.514,0.2245,0.101,0.15', "optional",
     f"request body, line 1, column 'sex': unknown value 'X'; {ONE_OF}"),
    ('"M,0.455",0.365', "optional", f"request body, line 1: expected {EIGHT}, got 2"),
    ("M,1,2,x,4,5,6,7", "optional", "request body, line 1, column 'height': 'x' is not a number"),
    (f"{ROW}\nM,1,2,3,4,5,6,", "optional", "request body, line 2, column 'shell_weight': is empty (a number is required)"),
    (f"{HEADER}\n{ROW}\nM,1,2,3,-4,5,6,7", "optional",
     "request body, line 3, column 'whole_weight': must be a finite number >= 0, got -4.0"),
    ("M,1,2,3,4,5,6,1_0", "optional", "request body, line 1, column 'shell_weight': '1_0' is not a number"),
    ("M,1,2,3", "optional", f"request body, line 1: expected {EIGHT}, got 4"),
    ("sex,length\nM,1,2,3,4,5,6,7", "optional",
     f"request body, line 1: header must be {HEADER},rings (or without 'rings'), got sex,length"),
    (f"{ROW},9\n{ROW},many", "required", "request body, line 2, column 'rings': 'many' is not a number"),
    # A wrong header is quoted whole up to 200 characters, then cut.
    ("sex," + "a" * 196 + f"\n{ROW}", "optional",
     f"request body, line 1: header must be {HEADER},rings (or without 'rings'), got sex," + "a" * 196),
    ("sex," + "a" * 197 + f"\n{ROW}", "optional",
     f"request body, line 1: header must be {HEADER},rings (or without 'rings'), got sex," + "a" * 196
     + "... (2 columns)"),
]


@pytest.mark.parametrize(("text", "label", "message"), CSV_ERRORS)
def test_a_bad_csv_row_is_named_with_its_line_column_value_and_rule(text: str, label: str, message: str) -> None:
    with pytest.raises(DataError) as caught:
        schema.parse_csv(text, label=label)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_a_file_is_named_where_a_request_would_be() -> None:
    with pytest.raises(DataError) as caught:
        schema.parse_csv(f"{ROW},9\n{_row(1, '-1')},9", where="train.csv", label="required")
    assert str(caught.value) == "train.csv, line 2, column 'length': must be a finite number >= 0, got -1.0"
    with pytest.raises(DataError) as caught:
        schema.parse_csv(ROW, where="train.csv", label="required")
    assert str(caught.value) == f"train.csv, line 1: expected {NINE}, got 8"


INSTANCE_ERRORS = [
    ({"a": 1}, "request body: 'instances' must be a list of rows"),
    ("M,1", "request body: 'instances' must be a list of rows"),
    ([], "request body: no instances"),
    ([{"foo": 1}], "request body, instance 1: unknown column 'foo'; expected " + HEADER.replace(",", ", ")),
    ([{"z" * 60: 1}], "request body, instance 1: unknown column '" + "z" * 40 + "'... (60 characters); expected "
     + HEADER.replace(",", ", ")),
    ([{"sex": "M"}], "request body, instance 1: missing column 'length'"),
    ([{"sex": "M", "length": 1, "height": 1}], "request body, instance 1: missing column 'diameter'"),
    ([[1, 2]], f"request body, instance 1: expected {EIGHT}, got 2"),
    ([["M", *VALUES, 9, 1]], f"request body, instance 1: expected {EIGHT}, got 10"),
    ([5], "request body, instance 1: each instance must be a list of values or an object of columns"),
    ([3], "request body, instance 1: each instance must be a list of values or an object of columns"),
    ([["F", 0.5, "0.4", 0.1, 0.6, 0.2, 0.1, 0.2]],
     "request body, instance 1, column 'diameter': must be a JSON number, got \"0.4\""),
    ([["F", 0.5, 0.4, 0.1, 0.6, 0.2, 0.1, True]],
     "request body, instance 1, column 'shell_weight': must be a JSON number, got true"),
    ([{"sex": "F", "weight": 1}], "request body, instance 1: unknown column 'weight'; expected " + HEADER.replace(",", ", ")),
    ([["Z", 1, 1, 1, 1, 1, 1, 1]], f"request body, instance 1, column 'sex': unknown value 'Z'; {ONE_OF}"),
    (["M,0.1"], "request body, instance 1: each instance must be a list of values or an object of columns"),
    ([["X", *VALUES]], f"request body, instance 1, column 'sex': unknown value 'X'; {ONE_OF}"),
    ([["x" * 41, *VALUES]], "request body, instance 1, column 'sex': unknown value '" + "x" * 40 + "'... (41 characters); "
     + ONE_OF),
    ([[1, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got 1"),
    ([[2.5, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got 2.5"),
    ([[True, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got true"),
    ([[False, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got false"),
    ([[None, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got null"),
    ([[10**39, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got " + "1" + "0" * 39),
    ([[10**40, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got a number of 41 digits"),
    ([[["a"], *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got a list of 1 value"),
    ([[[], *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got a list of 0 values"),
    ([[{"a": 1, "b": 2}, *VALUES]],
     "request body, instance 1, column 'sex': must be one of F, I, M (a string), got an object of 2 keys"),
    ([[{"a": 1}, *VALUES]], "request body, instance 1, column 'sex': must be one of F, I, M (a string), got an object of 1 key"),
    ([["M", "0.5", *VALUES[1:]]], "request body, instance 1, column 'length': must be a JSON number, got \"0.5\""),
    ([["M", "q" * 40, *VALUES[1:]]], "request body, instance 1, column 'length': must be a JSON number, got \"" + "q" * 40 + '"'),
    ([["M", "q" * 50, *VALUES[1:]]],
     "request body, instance 1, column 'length': must be a JSON number, got \"" + "q" * 40 + '"... (50 characters)'),
    ([["M", True, *VALUES[1:]]], "request body, instance 1, column 'length': must be a JSON number, got true"),
    ([["M", None, *VALUES[1:]]], "request body, instance 1, column 'length': must be a JSON number, got null"),
    ([["M", [1, 2], *VALUES[1:]]], "request body, instance 1, column 'length': must be a JSON number, got a list of 2 values"),
    ([["M", *VALUES], ["M", 0.1, 0.2, -0.5, *VALUES[3:]]],
     "request body, instance 2, column 'height': must be a finite number >= 0, got -0.5"),
    ([["M", 10**400, *VALUES[1:]]], "request body, instance 1, column 'length': must be a finite number >= 0, got inf"),
    ([["M", -(10**400), *VALUES[1:]]], "request body, instance 1, column 'length': must be a finite number >= 0, got -inf"),
    ([["M", *VALUES[:-1], float("nan")]],
     "request body, instance 1, column 'shell_weight': must be a finite number >= 0, got nan"),
    ([{"sex": "M", **dict(zip(HEADER.split(",")[1:], VALUES, strict=True)), "viscera_weight": -1}],
     "request body, instance 1, column 'viscera_weight': must be a finite number >= 0, got -1.0"),
]


def test_a_value_no_json_document_holds_is_named_by_its_python_type() -> None:
    # parse_instances is also called with Python values (batch jobs, tests): bytes, tuples.
    with pytest.raises(DataError) as caught:
        schema.parse_instances([[b"M", *VALUES]])
    assert str(caught.value) == "request body, instance 1, column 'sex': must be one of F, I, M (a string), got bytes"


@pytest.mark.parametrize(("instances", "message"), INSTANCE_ERRORS)
def test_a_bad_json_instance_is_named_with_its_index_column_value_and_rule(instances: object, message: str) -> None:
    with pytest.raises(DataError) as caught:
        schema.parse_instances(instances)
    assert str(caught.value) == message


def test_what_the_contract_accepts_besides_the_plain_row() -> None:
    expected = [0, 1, 2]  # F, I, M
    for text in (
        f"F{ROW[1:]}\nI{ROW[1:]}\nM{ROW[1:]}",  # the fast path
        f"f{ROW[1:]}\n i {ROW[1:]}\n\nM{ROW[1:]},9",  # lower case, padded, blank line, a 9th column
        f"{HEADER},rings\nF{ROW[1:]},1\nI{ROW[1:]}\nM{ROW[1:]},3",
        f'"F"{ROW[1:]}\n"I"{ROW[1:]}\n"M"{ROW[1:]}',  # quoted
    ):
        rows = schema.parse_csv(text)
        assert rows.sex.tolist() == expected, text
        assert rows.numeric.tolist() == [VALUES] * 3, text
        assert rows.label is None
        assert rows.fields is None  # kept only when asked for
    zeros = schema.parse_csv("I,0,0,0,0,0,0,0,0", label="required")  # measurements and rings of 0 are valid
    assert (zeros.numeric.tolist(), zeros.label.tolist()) == ([[0.0] * 7], [0.0])  # type: ignore[union-attr]
    assert schema.parse_instances([["I", 0, 0, 0.0, 0, 0, 0, 0]]).numeric.tolist() == [[0.0] * 7]
    kept = schema.parse_csv('"F" , 0.455,0.365,0.095,0.514,0.2245,0.101,0.15', keep_fields=True)
    assert kept.fields == [["F", "0.455", "0.365", "0.095", "0.514", "0.2245", "0.101", "0.15"]]
    rows = schema.parse_csv(f"{HEADER},rings\n{ROW},9\nI{ROW[1:]},0", label="required")
    assert (rows.sex.tolist(), rows.label.tolist()) == ([2, 1], [9.0, 0.0])  # type: ignore[union-attr]
    rows = schema.parse_instances([[" f ", *VALUES], {"sex": "i", **dict(zip(HEADER.split(",")[1:], VALUES, strict=True)),
                                                      "rings": 4}, ["M", *VALUES, 7]])
    assert rows.sex.tolist() == expected
    assert rows.numeric.tolist() == [VALUES] * 3


# preprocessing.json: the spec a model carries. A server given a model whose spec this
# container cannot read must refuse to start with the reason, not serve wrong features.
SPEC = {
    "version": 1,
    "columns": HEADER.split(","),
    "label": "rings",
    "categories": {"sex": ["F", "I", "M"]},
    "derived": [
        {"name": "shucked_fraction", "numerator": "shucked_weight", "denominator": ["whole_weight"]},
        {"name": "viscera_fraction", "numerator": "viscera_weight", "denominator": ["whole_weight"]},
        {"name": "shell_fraction", "numerator": "shell_weight", "denominator": ["whole_weight"]},
        {"name": "density", "numerator": "whole_weight", "denominator": ["length", "diameter", "height"]},
    ],
    "feature_names": ["sex_F", "sex_I", "sex_M", *HEADER.split(",")[1:],
                      "shucked_fraction", "viscera_fraction", "shell_fraction", "density"],
}
CONTRACT = "columns " + str(HEADER.split(",")) + ", label 'rings'"


def test_the_default_spec_is_written_and_read_back_as_the_artifact_format() -> None:
    spec = schema.FeatureSpec()
    assert json.loads(spec.dumps()) == SPEC
    assert spec.dumps().endswith("}\n") and spec.dumps().startswith('{\n  "version": 1,')
    assert schema.FeatureSpec.loads(json.dumps(SPEC)) == spec
    narrow = {**SPEC, "categories": {"sex": ["I", "M"]}, "derived": SPEC["derived"][3:]}  # type: ignore[index]
    assert schema.FeatureSpec.loads(json.dumps(narrow)) == schema.FeatureSpec(("I", "M"), (schema.Ratio(
        "density", "whole_weight", ("length", "diameter", "height")),))


def _spec(**changes: object) -> str:
    return json.dumps({**SPEC, **changes})


SPEC_ERRORS = [
    ("not json", "not a valid preprocessing spec (JSONDecodeError('Expecting value: line 1 column 1 (char 0)'))"),
    ("[]", "not a valid preprocessing spec (AttributeError(\"'list' object has no attribute 'get'\"))"),
    (_spec(version=2), "unsupported version 2 (this container reads version 1)"),
    (_spec(version=None), "unsupported version None (this container reads version 1)"),
    (_spec(columns=["sex"]), f"columns ['sex'] and label 'rings' do not match this container's data contract: {CONTRACT}"),
    (_spec(label="age"),
     f"columns {HEADER.split(',')} and label 'age' do not match this container's data contract: {CONTRACT}"),
    (_spec(categories={"sex": []}), "sex categories [] must be a subset of ['F', 'I', 'M']"),
    (_spec(categories={"sex": ["F", "X"]}), "sex categories ['F', 'X'] must be a subset of ['F', 'I', 'M']"),
    (_spec(categories={}), "not a valid preprocessing spec (KeyError('sex'))"),
    (_spec(derived=[{"name": "r", "numerator": "age", "denominator": ["length"]}]),
     "derived feature 'r' uses unknown column 'age'"),
    (_spec(derived=[{"name": "r", "numerator": "length", "denominator": ["length", "rings"]}]),
     "derived feature 'r' uses unknown column 'rings'"),
    (_spec(derived=[{"name": "r"}]), "not a valid preprocessing spec (KeyError('numerator'))"),
    (_spec(derived=5), "not a valid preprocessing spec (TypeError(\"'int' object is not iterable\"))"),
    (_spec(version=9), "unsupported version 9 (this container reads version 1)"),
    (_spec(columns=["a"]), f"columns ['a'] and label 'rings' do not match this container's data contract: {CONTRACT}"),
    (_spec(categories={"sex": ["X"]}), "sex categories ['X'] must be a subset of ['F', 'I', 'M']"),
    (_spec(derived=[{"name": "d", "numerator": "mass", "denominator": []}]), "derived feature 'd' uses unknown column 'mass'"),
    ('{"version": 1}', "not a valid preprocessing spec (KeyError('columns'))"),
]


@pytest.mark.parametrize(("text", "message"), SPEC_ERRORS)
def test_a_spec_this_container_cannot_read_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(UserError) as caught:
        schema.FeatureSpec.loads(text, where="model/preprocessing.json")
    assert str(caught.value) == f"model/preprocessing.json: {message}"


def test_a_sex_the_model_never_saw_is_a_bad_request_naming_what_the_model_knows() -> None:
    spec = schema.FeatureSpec(categories=("F", "M"))
    rows = schema.parse_csv(f"F{ROW[1:]}\nM{ROW[1:]}\nI{ROW[1:]}")
    with pytest.raises(DataError) as caught:
        spec.encode(rows)
    assert str(caught.value) == "column 'sex': value 'I' was not seen in training; this model knows F, M"
    assert spec.encode(rows.take(np.array([1, 0])))[:, :2].tolist() == [[0.0, 1.0], [1.0, 0.0]]
    single = schema.FeatureSpec(categories=("M",))  # one category: the one-hot part is one column
    with pytest.raises(DataError) as caught:
        single.encode(schema.parse_csv(f"M{ROW[1:]}\nF{ROW[1:]}"))
    assert str(caught.value) == "column 'sex': value 'F' was not seen in training; this model knows M"


def test_a_spec_read_without_a_location_is_named_preprocessing_json() -> None:
    with pytest.raises(UserError) as caught:
        schema.FeatureSpec.loads(_spec(version=3))
    assert str(caught.value) == "preprocessing.json: unsupported version 3 (this container reads version 1)"


# The fast path (_parse_plain) reads the common case without the general parser; it must
# read it exactly as the general parser does, and hand everything else over (None).
PLAIN = [
    (f"{ROW}\nF{ROW[1:]}\nI{ROW[1:]}", "optional"),
    (f"{HEADER}\n{ROW}\nF{ROW[1:]}", "optional"),
    (f"{HEADER.upper()}\n{ROW}", "optional"),
    (f"{HEADER},rings\n{ROW},9\nI{ROW[1:]}", "optional"),
    (f"{ROW},9\nI{ROW[1:]}", "optional"),
    (f"{HEADER},rings\n{ROW},9\nF{ROW[1:]},0", "required"),
    (f"{ROW},9\nF{ROW[1:]},3", "required"),
]


@pytest.mark.parametrize(("text", "label"), PLAIN)
def test_the_fast_path_reads_plain_rows_as_the_general_parser_does(text: str, label: str) -> None:
    fast = schema._parse_plain(text, where="request body", label=label)  # type: ignore[arg-type]
    assert fast is not None
    general = schema._parse_general(text, where="request body", label=label, keep_fields=False)  # type: ignore[arg-type]
    assert fast.sex.tolist() == general.sex.tolist()
    assert fast.sex.dtype == general.sex.dtype == np.int8
    assert fast.numeric.tolist() == general.numeric.tolist()
    assert (None if fast.label is None else fast.label.tolist()) == (None if general.label is None else general.label.tolist())


@pytest.mark.parametrize(("text", "label"), [
    ("", "optional"), (HEADER, "optional"), (f"sex,length\n{ROW}", "optional"), (f"{HEADER}\n{ROW},9", "required"),
    (f"{ROW}\n\n{ROW}", "optional"), (f" M{ROW[1:]}", "optional"), (f"m{ROW[1:]}", "optional"),
    (ROW, "required"), (f"{ROW},9,1", "optional"),
    (f"{ROW},9\n{ROW},9,1\n{ROW}", "optional"), (f"{ROW}\n{ROW[:-5]}", "optional"), (f"M,abc{ROW[7:]}", "optional"),
])
def test_the_fast_path_hands_anything_else_to_the_general_parser(text: str, label: str) -> None:
    assert schema._parse_plain(text, where="request body", label=label) is None  # type: ignore[arg-type]


def test_plain_text_never_reaches_the_general_parser_and_quoted_text_skips_the_fast_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The split is the server's throughput: the general parser is several times slower.
    real_general = schema._parse_general

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the other parser was called")

    monkeypatch.setattr(schema, "_parse_general", refuse)
    assert schema.parse_csv(f"{ROW}\nF{ROW[1:]}").sex.tolist() == [2, 0]
    monkeypatch.setattr(schema, "_parse_general", real_general)
    monkeypatch.setattr(schema, "_parse_plain", refuse)
    assert schema.parse_csv(f'"M"{ROW[1:]}').sex.tolist() == [2]
    assert schema.parse_csv(ROW, keep_fields=True).fields == [ROW.split(",")]
