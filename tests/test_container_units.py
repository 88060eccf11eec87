"""The container package in-process: data contract, encoding, hyperparameters, metrics,
content negotiation, and the flattened-tree predictor against XGBoost itself."""

from __future__ import annotations

import base64
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "container"))

from mlcontainer import inference, legacy, model, paths, preprocess, schema, train
from mlcontainer.errors import DataError, UserError
from mlcontainer.evaluate import regression_metrics
from mlcontainer.forest import Forest
from mlcontainer.server import ServerConfig

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
HEADER = ",".join(schema.FEATURES)


# --- data contract -----------------------------------------------------------------------

def test_sample_data_parses_with_labels() -> None:
    rows = schema.parse_csv((REPO / "container/data/abalone.csv").read_text(),
                            where="abalone.csv", label="required", keep_fields=True)
    assert len(rows) == 4177
    assert rows.numeric.shape == (4177, 7)
    assert rows.fields[0] == ["M", "0.455", "0.365", "0.095", "0.514", "0.2245", "0.101", "0.15", "15"]
    assert rows.label[:3].tolist() == [15.0, 7.0, 9.0]
    assert set(np.unique(rows.sex).tolist()) == {0, 1, 2}


@pytest.mark.parametrize("text", [
    ROW, f"{ROW},15", f"{HEADER}\n{ROW}", f"{HEADER},rings\n{ROW},15", f"\n{ROW}\n\n",
    f" m ,{ROW[2:]}", '"M",0.455,0.365,0.095,0.514,0.2245,0.101,0.15',
])
def test_request_rows_in_every_accepted_shape(text: str) -> None:
    rows = schema.parse_csv(text)
    assert rows.sex.tolist() == [2]
    assert rows.numeric.tolist() == [[0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]]


def test_fast_and_general_parsers_agree() -> None:
    text = (REPO / "container/data/abalone.csv").read_text()
    fast = schema.parse_csv(text, label="required")
    general = schema.parse_csv(text, label="required", keep_fields=True)
    assert np.array_equal(fast.numeric, general.numeric)
    assert np.array_equal(fast.sex, general.sex)
    assert np.array_equal(fast.label, general.label)


def test_json_instances_lists_and_objects() -> None:
    names = schema.FEATURES
    values = ["F", 0.53, 0.42, 0.135, 0.677, 0.2565, 0.1415, 0.21]
    rows = schema.parse_instances([values, dict(zip(names, values)), [*values, 9]])
    assert rows.sex.tolist() == [0, 0, 0]
    assert np.allclose(rows.numeric, [values[1:]] * 3)


# --- encoding ------------------------------------------------------------------------------

def test_encoding_one_hot_measurements_and_ratios() -> None:
    spec = schema.FeatureSpec()
    rows = schema.parse_csv(f"{ROW}\nI,0.2,0.1,0,0.5,0.2,0.1,0.1")
    features = spec.encode(rows)
    assert features.dtype == np.float32
    assert spec.feature_names[:4] == ["sex_F", "sex_I", "sex_M", "length"]
    assert features[0, :3].tolist() == [0, 0, 1] and features[1, :3].tolist() == [0, 1, 0]
    named = dict(zip(spec.feature_names, features[0].tolist()))
    assert named["shell_fraction"] == pytest.approx(0.15 / 0.514)
    assert named["density"] == pytest.approx(0.514 / (0.455 * 0.365 * 0.095), rel=1e-6)
    # Height 0: the density is missing (NaN), not infinite.
    assert np.isnan(dict(zip(spec.feature_names, features[1].tolist()))["density"])


# --- hyperparameters, split, metrics -----------------------------------------------------------

def test_hyperparameters_are_typed_with_defaults() -> None:
    values = train.parse_hyperparameters({"max_depth": "4", "eta": '"0.3"', "num_round": "20.0",
                                          "sagemaker_program": "x", "_tuning_objective_metric": "y"})
    assert values["max_depth"] == 4 and values["eta"] == 0.3 and values["num_round"] == 20
    assert values["min_child_weight"] == 10.0 and values["objective"] == "reg:squarederror"
    assert "sagemaker_program" not in values


@pytest.mark.parametrize(("raw", "message"), [
    ({"max_depth": "five"}, "hyperparameter 'max_depth': 'five' is not an integer"),
    ({"eta": "1.5"}, "hyperparameter 'eta': '1.5' is not a number in (0, 1]"),
    ({"num_round": "2.5"}, "'num_round': '2.5' is not an integer"),
    ({"objective": "binary:logistic"}, "'objective': 'binary:logistic' is not one of"),
    ({"max_dept": "3"}, "unknown hyperparameter 'max_dept'"),
])
def test_hyperparameter_errors(raw: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        train.parse_hyperparameters(raw)
    assert message in str(caught.value)


def test_gpu_count_prefers_sagemaker_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_NUM_GPUS", "4")
    assert train.gpu_count() == 4
    monkeypatch.setenv("SM_NUM_GPUS", "0")
    assert train.gpu_count() == 0


def test_split_counts() -> None:
    assert preprocess.split_counts(4177, 0.7, 0.15) == (2924, 627, 626)
    with pytest.raises(UserError, match="too few"):
        preprocess.split_counts(2, 0.7, 0.15)
    with pytest.raises(UserError, match="train \\+ validation < 1"):
        preprocess.split_counts(100, 0.9, 0.2)


def test_regression_metrics_values_and_bootstrap() -> None:
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    metrics = regression_metrics(truth, truth + np.array([1.0, -1.0, 1.0, -1.0]))
    assert metrics["mse"]["value"] == 1.0 and metrics["rmse"]["value"] == 1.0
    assert metrics["mae"]["value"] == 1.0
    assert metrics["r2"]["value"] == pytest.approx(1 - 4 / 5)
    assert metrics["rmse"]["standard_deviation"] == 0.0  # every resample has |error| = 1
    assert metrics["r2"]["standard_deviation"] > 0
    assert regression_metrics(truth, truth + 0.5) == regression_metrics(truth, truth + 0.5)


def test_paths_follow_ml_prefix_and_sm_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SM_MODEL_DIR", raising=False)
    monkeypatch.delenv("SM_CHANNEL_TRAIN", raising=False)
    monkeypatch.setenv("ML_PREFIX", str(tmp_path))
    assert paths.model_dir() == tmp_path / "model"
    assert paths.channel_dir("train") == tmp_path / "input/data/train"
    assert paths.failure_file() == tmp_path / "output/failure"
    monkeypatch.setenv("SM_CHANNEL_TRAIN", "/data/train")
    monkeypatch.setenv("SM_MODEL_DIR", "/models")
    assert paths.channel_dir("train") == Path("/data/train")
    assert paths.model_dir() == Path("/models")
    monkeypatch.delenv("ML_PREFIX")
    assert paths.evaluation_model_file() == Path("/opt/ml/processing/model/model.tar.gz")


# --- request bodies, however pathological ----------------------------------------------------

VALUES = [0.455, 0.365, 0.095, 0.514, 0.2245, 0.101, 0.15]


def _instance(position: int, value: str) -> bytes:
    cells = [json.dumps("M"), *map(json.dumps, VALUES)]
    cells[position] = value
    return ("[[" + ",".join(cells) + "]]").encode()


JSON_BODIES = [
    # (body, words of the message); every one a 400
    (b"[" * 100_000 + b"]" * 100_000, "malformed JSON: nested too deeply"),
    (b"[" * 100_000, "malformed JSON: nested too deeply"),
    (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    (_instance(0, "[" * 500 + "]" * 500), "column 'sex': must be one of F, I, M (a string), got a list"),
    (_instance(1, "1e400"), "column 'length': must be a finite number >= 0, got inf"),
    (_instance(1, "-" + "9" * 400), "column 'length': must be a finite number >= 0, got -inf"),
    (_instance(1, "9" * 5000), "malformed JSON: a number has more than 4300 digits"),
    (_instance(1, "NaN"), "malformed JSON: NaN is not valid JSON"),
    (_instance(1, "-Infinity"), "malformed JSON: -Infinity is not valid JSON"),
    (_instance(2, '"' + "x" * 100_000 + '"'), '... (100000 characters)'),
    (_instance(0, '"\\udcff"'), "column 'sex': unknown value '\\udcff'"),
    (b'{"instances": [], "instances": []}', "key 'instances' appears twice in one object"),
    (b'[{"sex": "M", "sex": "F"}]', "key 'sex' appears twice"),
    (b"[1] [2]", "malformed JSON: Extra data"),
    (b"\xef\xbb\xbf\xef\xbb\xbf[]", "malformed JSON"),
    (b"\xef\xbb\xbf \n", "empty request body"),
    (b"\xff\xfe[\x00]\x00", "not UTF-8 text"),
    (b"null", "'instances' must be a list of rows"),
    (b'{"instances": 1}', "'instances' must be a list of rows"),
]

CSV_BODIES = [
    (",".join(["M", *["1"] * 9_999]), "line 1: expected 8 columns"),
    ("sex," + ",".join(["x" * 50] * 9_999), "line 1: header must be"),
    ("M,\u0661,1,1,1,1,1,1", "column 'length': '\u0661' is not a number"),
    ("M,1,1,1,1,1,1,\U0001d7d9", "column 'shell_weight': '\U0001d7d9' is not a number"),
    ('"' + "M" * 200_000 + '",1,1,1,1,1,1,1', "line 1: not valid CSV (field larger than"),
    ("M,1,1,1,1,1,1," + "1" * 100_000 + "x", "... (100001 characters) is not a number"),
    ("M,1,1\x00,1,1,1,1,1", "column 'diameter': '1\\x00' is not a number"),
    ("\x00", "line 1: expected 8 columns"),
    ("M,1e999,1,1,1,1,1,1", "must be a finite number >= 0, got inf"),
]


@pytest.mark.parametrize(("body", "message"), JSON_BODIES, ids=range(len(JSON_BODIES)))
def test_pathological_json_bodies_are_400_with_a_short_message(body: bytes, message: str) -> None:
    with pytest.raises(inference.RequestError) as caught:
        inference.parse_body(body, "application/json")
    assert caught.value.status == 400
    assert message in caught.value.message
    assert len(caught.value.message) < 300 and "\n" not in caught.value.message


@pytest.mark.parametrize(("text", "message"), CSV_BODIES, ids=range(len(CSV_BODIES)))
def test_pathological_csv_bodies_are_400_with_a_short_message(text: str, message: str) -> None:
    with pytest.raises(inference.RequestError) as caught:
        inference.parse_body(text.encode(), "text/csv")
    assert caught.value.status == 400
    assert message in caught.value.message
    assert len(caught.value.message) < 500 and "\n" not in caught.value.message


def test_a_leading_byte_order_mark_is_dropped() -> None:
    expected = inference.parse_body(ROW.encode(), "text/csv")
    for body, kind in ((b"\xef\xbb\xbf" + ROW.encode(), "text/csv"),
                       (b"\xef\xbb\xbf" + f"{HEADER}\n{ROW}".encode(), "text/csv"),
                       (b"\xef\xbb\xbf" + json.dumps([["M", *VALUES]]).encode(), "application/json")):
        rows = inference.parse_body(body, kind)
        assert rows.sex.tolist() == expected.sex.tolist()
        assert rows.numeric.tolist() == expected.numeric.tolist()


def test_instances_nested_deeper_than_the_recursion_limit_are_described_not_walked() -> None:
    deep: list = []
    for _ in range(100_000):  # built without recursion, as a decoder with no limit would
        deep = [deep]
    for position in range(8):
        instance: list = ["M", *VALUES]
        instance[position] = deep
        with pytest.raises(DataError, match=r"got a list of 1 value$"):
            schema.parse_instances([instance])
    with pytest.raises(DataError, match="unknown column"):
        schema.parse_instances([{"x" * 10: deep}])


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), kind=st.sampled_from(["text/csv", "application/json"]))
def test_any_bytes_are_rows_or_a_4xx(body: bytes, kind: str) -> None:
    try:
        inference.parse_body(body, kind)
    except inference.RequestError as err:
        assert 400 <= err.status < 500 and err.message


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from(["M", "F", "I", "sex", "length"]),
    lambda children: st.lists(children, max_size=9)
    | st.dictionaries(st.sampled_from([*schema.COLUMNS, "instances", "x"]), children, max_size=9),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(document=_JSON_VALUES)
def test_any_json_document_is_rows_or_a_400(document: object) -> None:
    body = json.dumps(document).encode()  # NaN and Infinity included: rejected
    try:
        rows = inference.parse_body(body, "application/json")
    except inference.RequestError as err:
        assert err.status == 400 and err.message and "\n" not in err.message
    else:
        assert len(rows) >= 1 and np.isfinite(rows.numeric).all()


def test_error_bodies_are_one_line_of_ascii_json() -> None:
    from mlcontainer.server import error_body

    body = error_body("unknown value '\udcff' \u00e9\n")
    assert body.isascii() and body.endswith(b"}\n") and body.count(b"\n") == 1
    assert json.loads(body) == {"message": "unknown value '\udcff' \u00e9\n"}


# --- prediction --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def booster():
    import xgboost as xgb

    rows = schema.parse_csv((REPO / "container/data/abalone.csv").read_text(), label="required")
    spec = schema.FeatureSpec()
    features = spec.encode(rows)
    return xgb.train({"max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0},
                     xgb.DMatrix(features, label=rows.label), num_boost_round=15)


def test_forest_reproduces_xgboost_bit_for_bit(booster) -> None:
    forest = Forest.build(booster, 14)
    assert forest is not None and forest.depth == 4
    rng = np.random.default_rng(7)
    features = rng.uniform(0, 1.5, size=(500, 14)).astype(np.float32)
    features[rng.random(features.shape) < 0.1] = np.nan
    expected = booster.inplace_predict(features, validate_features=False)
    assert np.array_equal(forest.predict(features), expected)
    assert np.array_equal(forest.predict(features[:1]), expected[:1])


def test_forest_declines_models_it_does_not_reproduce(booster) -> None:
    import xgboost as xgb

    dart = xgb.train({"booster": "dart", "max_depth": 2, "nthread": 1},
                     xgb.DMatrix(np.random.default_rng(0).random((50, 3)), label=np.arange(50.0)),
                     num_boost_round=3)
    assert Forest.build(dart, 3) is None
    description = json.loads(booster.save_raw("json"))
    description["learner"]["objective"]["name"] = "binary:logistic"
    assert Forest.from_model(description) is None


def test_predictor_and_handler(booster, tmp_path: Path) -> None:
    booster.save_model(str(tmp_path / model.MODEL_FILE))
    (tmp_path / model.SPEC_FILE).write_text(schema.FeatureSpec().dumps())
    predictor = model.Predictor.from_dir(tmp_path, nthread=1)
    handler = inference.InvocationHandler(predictor)
    many = "\n".join([ROW] * 100)
    kind, single = handler(ROW.encode(), "text/csv", None)
    assert kind == "text/csv" and single.endswith(b"\n") and float(single) > 0
    _, batch = handler(many.encode(), "text/csv", None)  # past SMALL_BATCH: XGBoost predicts
    assert batch.decode().split() == [single.decode().strip()] * 100
    kind, answer = handler(json.dumps({"instances": [ROW.split(",")[:1] + [float(v) for v in ROW.split(",")[1:]]]}).encode(),
                           "application/json", "application/json")
    assert kind == "application/json"
    assert json.loads(answer)["predictions"] == [float(single)]


def test_model_files_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        model.read_model_files(tmp_path / "missing")
    with pytest.raises(UserError, match="no model in .*found nothing"):
        model.read_model_files(tmp_path)
    (tmp_path / model.MODEL_FILE).write_bytes(b"x")
    with pytest.raises(UserError, match="no preprocessing.json"):
        model.read_model_files(tmp_path)
    (tmp_path / model.SPEC_FILE).write_text(schema.FeatureSpec().dumps())
    with pytest.raises(UserError, match="is not an XGBoost model"):
        model.Predictor.from_dir(tmp_path)
    (tmp_path / model.MODEL_FILE).unlink()
    (tmp_path / model.BUILTIN_MODEL_FILE).write_bytes(b"\x80\x04pickled")
    with pytest.raises(UserError, match="pickled booster"):
        model.Predictor.from_dir(tmp_path)


# --- the built-in algorithm's models -------------------------------------------------------

#: ``xgboost-model`` as SageMaker's built-in XGBoost 1.7-1 saves it (``Booster.save_model``,
#: no extension: XGBoost 1.x's legacy binary format), here made by XGBoost 1.7.6 from the
#: default encoding of container/data/abalone.csv (6 rounds, depth 2, eta 0.5, with early
#: stopping on the last 20 %); zlib-compressed, base64. XGBoost 3.1 and later cannot read
#: this format themselves.
BUILTIN_1_7_MODEL = zlib.decompress(base64.b64decode(
    "eNpLysxLY2BgsOdjgABGJJodSsPEaA0EoHRRarpVcWFpYlFqSmpRUX4RG1Q8PamkKDWVjY4uIgfAQg4G+AaBm/4D"
    "AchdTEDMycDQ0J3jbgdkNjADCRao2PXFBbYgtaxADApjLqDY2gvn7ID6Gv5DAUg+ZIWKAyPUTJjY6uoGByY0dQb3"
    "roDEUNTlb57ncCBDyY3hQoDr9BkSjiAxhzMvXBgerHFRWvvWAcRfIDLNleHAFxfxOANHuAcaJjqHrFjigOB3uKyu"
    "ZkDIH5BzMbgXguAnLHXJ3yznOFTiY0ZeE0Z8hDx+ihEfvD5HMeLj4Jkd9ujx8ZefHyM+pl0vwYiPXENdB4f8MFdQ"
    "fBgfnQEJ3+MdLgwOb1ziiirAfAWluS4MCVtdzlzfiwh/BwOXg2csEHyFKS5/+fsRfIblztOuf0HwF3S75BqudRg6"
    "+eM4SnyAwr5H5K4dcnzwAMX05RZgxEfN7GUY8TGdzccePT6+vrlujx4fO+M0HRi273cBxYfjdwlweG3wMnVhEDB2"
    "PWjMDgnPu/udGRjeOatvaESE74HtLjWz1RD8hHUu09nO2CN8ONv565twpPhRc94Zt3JIxAcofEE1FHJ8gMKeQWg6"
    "SnwA5RrS0tow4uOrNh9GfNywa8SIDxdt8f3o8TH18SK7F1sdwPERbDYTHJ4BVq+cGR7wu3o2HQLz2zzagPxGF6fy"
    "b3aI8mmey1ftPkT4OzS63LBjRAr/DU4u2tP3I+Iv12XqYyX7oZI/TOOYUOIDGAcNra8vopRX3EAxLhMLjPhQi5Lf"
    "ix4fUl/W2qHHR5WEIEZ5lXY61J5h7XZnUHys85cEh9eUN/3A/ODpmlbGAeafKVcB8n85lU8URKovpF3UoubvRZRX"
    "Sq5SX3SR8scJxyqJiUjxc8Ip7fTVIREfoLJpYekelPIKlBeMjSfbodcfJoHvMeLjZdHOfejxcY1bGiN/sB5UtkOP"
    "j9acOXvl21rB8aF4dSbYPqtZDMDwv+L8wrEVHH47w4H8ADPXl5KuiPzBIOL0ssgSkf4bDjpf456NiA8DVlfWg4uR"
    "8pOLS2uOzD58YcKCFj9JqcUl8ZklqUWJJZn5ebAWo6kAsnQeqEEZn5OZm1kCU2DGhaygODm/KFUQKmKoZ2FuZmJp"
    "ZmJuZGZgamJgwgmVyE/KSk0uySxLdYUKVCvlJeamKlkpoTdllXRAQvE5+cXF8QWJRYm5SlbVSsXJiTmp8QX5xfHl"
    "qZnpGSVAfYZKtbUAFaQEew=="
))
#: Raw rows, and what XGBoost 1.7.6 predicted for them from the encoded features.
BUILTIN_1_7_ROWS = [
    "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15",
    "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21",
    "I,0.33,0.255,0.08,0.205,0.0895,0.0395,0.055",
    "M,0.7,0.55,0.2,1.5,0.6,0.3,0.45",
]
BUILTIN_1_7_PREDICTIONS = np.array([8.223793, 12.198492, 5.752652, 13.054583], dtype=np.float32)


def test_a_builtin_1_7_model_in_the_legacy_binary_format_is_served_from_raw_rows(
    tmp_path: Path,
) -> None:
    assert legacy.is_legacy(BUILTIN_1_7_MODEL)
    (tmp_path / model.BUILTIN_MODEL_FILE).write_bytes(BUILTIN_1_7_MODEL)
    predictor = model.Predictor.from_dir(tmp_path, nthread=1)
    assert predictor.kind == "builtin"
    assert predictor.spec == schema.FeatureSpec()
    rows = schema.parse_csv("\n".join(BUILTIN_1_7_ROWS), label="optional")
    # Bit for bit what XGBoost 1.7 predicts, on both prediction paths.
    assert np.array_equal(predictor.predict(rows), BUILTIN_1_7_PREDICTIONS)
    features = predictor.spec.encode(rows)
    assert np.array_equal(predictor.booster.inplace_predict(features), BUILTIN_1_7_PREDICTIONS)
    _, answer = inference.InvocationHandler(predictor)(
        "\n".join(BUILTIN_1_7_ROWS).encode(), "text/csv", None
    )
    assert np.allclose([float(v) for v in answer.split()], BUILTIN_1_7_PREDICTIONS, rtol=1e-6)


def test_the_legacy_conversion_keeps_the_model(tmp_path: Path) -> None:
    document = legacy.to_json(BUILTIN_1_7_MODEL)
    learner = document["learner"]
    assert document["version"] == [1, 7, 0]
    assert learner["objective"] == {"name": "reg:squarederror",
                                    "reg_loss_param": {"scale_pos_weight": "1"}}
    assert learner["learner_model_param"]["num_feature"] == "14"
    assert learner["attributes"]["best_iteration"] == "5"  # early stopping's, kept
    trees = learner["gradient_booster"]["model"]["trees"]
    assert len(trees) == 6 and trees[0]["parents"][0] == 0x7FFFFFFF  # the root's
    for tree in trees:
        leaves = [i for i, left in enumerate(tree["left_children"]) if left == -1]
        assert leaves and all(tree["right_children"][i] == -1 for i in leaves)


def _legacy_header(major: int = 1, booster: str = "gbtree") -> bytes:
    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    param = struct.pack("<fIiiiIIIi100x", 0.5, 14, 0, 1, 0, major, 7, 1, 1)
    return legacy.HEADER + param + string("reg:squarederror") + string(booster)


@pytest.mark.parametrize(("data", "message"), [
    (BUILTIN_1_7_MODEL[:400], "truncated or corrupt"),
    (_legacy_header(booster="gblinear"), "'gblinear' booster"),
    (_legacy_header(major=0), "before 1.0"),
])
def test_legacy_models_it_cannot_read_are_named(tmp_path: Path, data: bytes, message: str) -> None:
    (tmp_path / model.BUILTIN_MODEL_FILE).write_bytes(data)
    with pytest.raises(UserError, match=message) as caught:
        model.Predictor.from_dir(tmp_path)
    assert str(caught.value).startswith(str(tmp_path / model.BUILTIN_MODEL_FILE))


def _gunicorn_app(env: dict[str, str]):
    """``serve``'s gunicorn application for ``env`` (on a socket of its own)."""
    import socket

    from mlcontainer import httpserver

    files = model.ModelFiles(b"", "{}", "custom", Path("/opt/ml/model/model.ubj"))
    return httpserver.Application(ServerConfig.from_env(env), socket.socket(), files)


def test_gunicorn_is_configured_from_the_serving_environment() -> None:
    """The worker count, the watchdog (gunicorn kills a worker whose event loop stops
    ticking for MODEL_SERVER_TIMEOUT s), keep-alive and the graceful stop come from the
    environment; the workers are uvicorn's, with this container's HTTP protocol."""
    import os

    from mlcontainer import httpserver

    app = _gunicorn_app({"MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_TIMEOUT": "2.5",
                         "MODEL_SERVER_KEEP_ALIVE": "7"})
    try:
        cfg = app.cfg
        assert (cfg.workers, cfg.timeout, cfg.keepalive, cfg.graceful_timeout) == (3, 3, 7, 10)
        assert cfg.worker_class is httpserver.Worker and cfg.bind == [f"fd://{app.fd}"]
        assert httpserver.Worker.CONFIG_KWARGS["http"] is httpserver.Protocol
        assert httpserver.Worker.CONFIG_KWARGS["loop"] == "uvloop"  # no silent fallback
        # Declared, not guessed: App.__call__ is a plain method returning the coroutine.
        assert httpserver.Worker.CONFIG_KWARGS["interface"] == "asgi3"
        with pytest.raises(TypeError):  # uvicorn's app-factory probe calls it bare
            app.load()()
        assert app.load().cfg.max_bytes == 6 * 1024 * 1024
        assert app.load().balance is app.balance  # the workers' shared busy flags
    finally:
        os.close(app.fd)


def test_gunicorn_logs_warnings_to_stderr_under_the_servers_name() -> None:
    """What gunicorn itself says goes to stderr (CloudWatch Logs on SageMaker), warnings and
    worse only; ps and top show the processes as mlcontainer-serve; gunicorn 25 and later
    open no control socket (a root-owned Unix socket in $HOME, a thread in the master)."""
    import logging
    import os
    import sys

    from gunicorn.glogging import Logger

    app = _gunicorn_app({})
    try:
        cfg = app.cfg
        error_log = Logger(cfg).error_log
        assert error_log.level == logging.WARNING
        assert [type(h) for h in error_log.handlers] == [logging.StreamHandler]
        assert error_log.handlers[0].stream is sys.stderr
        assert cfg.proc_name == "mlcontainer-serve"
        if "control_socket_disable" in cfg.settings:
            assert cfg.control_socket_disable is True
    finally:
        os.close(app.fd)


@pytest.mark.parametrize(("code", "status"), [(0, 0), (None, 0), (1, 1), (3, 1), ("returns", 0)])
def test_the_server_exits_0_when_stopped_and_1_when_it_could_not_run(
        monkeypatch: pytest.MonkeyPatch, code: int | str | None, status: int) -> None:
    """gunicorn halts with 3 when a worker cannot start (the model does not load); a run
    that returns instead of halting has stopped cleanly."""
    import os
    import socket

    from mlcontainer import httpserver

    def halt(self) -> None:
        if code != "returns":
            raise SystemExit(code)

    monkeypatch.setattr(httpserver.Application, "run", halt)
    files = model.ModelFiles(b"", "{}", "custom", Path("/opt/ml/model/model.ubj"))
    sock = socket.socket()
    fd = sock.fileno()
    try:
        assert httpserver.run(ServerConfig.from_env({}), sock, files) == status
    finally:
        os.close(fd)  # gunicorn would own it


def test_gunicorn_hooks_say_what_happened(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from mlcontainer import httpserver

    httpserver._child_exit(None, SimpleNamespace(pid=101))
    httpserver._on_exit(None)
    err = capsys.readouterr().err
    assert "worker 101 exited" in err and err.rstrip().endswith("stopped")


def test_balance_gives_each_worker_a_free_slot_and_clears_its_flag() -> None:
    """gunicorn's pre_fork hook runs in the master for every worker it starts, the first
    ones and each replacement: the replacement takes the slot its predecessor left, whose
    busy flag a death mid-request may have left set."""
    from types import SimpleNamespace

    from mlcontainer import httpserver

    balance = httpserver.Balance(3)
    live: dict[int, SimpleNamespace] = {}
    server = SimpleNamespace(WORKERS=live)
    for pid in (11, 12, 13):
        worker = SimpleNamespace()
        balance.pre_fork(server, worker)
        live[pid] = worker
    assert [worker.slot for worker in live.values()] == [0, 1, 2]
    balance.flags[1] = 1  # worker 12 dies while it runs a request
    del live[12]
    replacement = SimpleNamespace()
    balance.pre_fork(server, replacement)
    assert replacement.slot == 1 and balance.flags[:] == b"\0\0\0"
    live[14] = replacement
    extra = SimpleNamespace()  # more workers than slots (gunicorn's TTIN signal)
    balance.pre_fork(server, extra)
    assert extra.slot == -1
    balance.post_fork(server, replacement)
    assert balance.slot == 1


def test_balance_flags_a_worker_busy_while_any_request_runs() -> None:
    from mlcontainer import httpserver

    balance = httpserver.Balance(2)
    balance.slot = 1
    balance.begin()
    balance.begin()
    assert balance.flags[:] == b"\0\1"
    balance.end()
    assert balance.flags[:] == b"\0\1"  # one request still runs
    balance.end()
    assert balance.flags[:] == b"\0\0"
    first = httpserver.Balance(2)
    first.slot = 0
    first.begin()
    assert first.flags[:] == b"\1\0"
    first.end()
    assert first.flags[:] == b"\0\0"
    unslotted = httpserver.Balance(1)
    unslotted.begin()
    assert unslotted.flags[:] == b"\0" and unslotted.active == 1


def test_a_connection_is_polled_until_it_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each connection's socket is in the worker's poll set while it is open. A socket
    number freed by one connection and taken by a newer one before the first is told it
    is lost stays watched for the newer one."""
    import select
    import socket
    from types import SimpleNamespace

    from mlcontainer import httpserver
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    monkeypatch.setattr(HttpToolsProtocol, "connection_made", lambda self, transport: None)
    monkeypatch.setattr(HttpToolsProtocol, "connection_lost", lambda self, exc: None)
    monkeypatch.setattr(httpserver.Protocol, "open", {})
    monkeypatch.setattr(httpserver.Protocol, "readable", select.poll())
    Protocol = httpserver.Protocol

    def connection(sock: socket.socket | None) -> httpserver.Protocol:
        protocol = object.__new__(Protocol)
        protocol.fd = -1
        # asyncio's and uvloop's transports: get_extra_info(name, default=None)
        protocol.connection_made(SimpleNamespace(
            get_extra_info=lambda name, default=None: sock if name == "socket" else default))
        return protocol

    ours, theirs = socket.socketpair()
    quiet, quiet_peer = socket.socketpair()
    theirs.send(b"GET /ping HTTP/1.1\r\n\r\n")
    try:
        idle = connection(quiet)  # watched for unread requests only, not for room to write
        assert Protocol.open == {quiet.fileno(): idle} and Protocol.readable.poll(0) == []
        idle.connection_lost(None)
        first = connection(ours)
        assert Protocol.open == {ours.fileno(): first} and Protocol.readable.poll(0)
        newer = connection(ours)  # the same socket number, a newer connection
        first.connection_lost(None)
        assert Protocol.open == {ours.fileno(): newer} and Protocol.readable.poll(0)
        newer.connection_lost(None)
        assert Protocol.open == {} and not Protocol.readable.poll(0)
        bare = connection(None)  # a transport without a socket is not watched
        assert bare.fd == -1 and Protocol.open == {}
        bare.connection_lost(None)
    finally:
        for sock in (ours, theirs, quiet, quiet_peer):
            sock.close()


def test_balance_closes_a_connection_only_when_crowded_while_another_worker_idles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Crowded: a second request of this worker runs (awaiting its body), or one lies
    unread on one of its connections. Closing helps only while another worker is idle."""
    import select
    import socket

    from mlcontainer import httpserver

    balance = httpserver.Balance(2)
    balance.slot = 0
    balance.begin()
    quiet_a, quiet_b = socket.socketpair()
    ready_a, ready_b = socket.socketpair()
    ready_b.send(b"POST /invocations")
    try:
        for watched, crowded in [((), False), ((quiet_a,), False), ((quiet_a, ready_a), True)]:
            poll = select.poll()
            for sock in watched:
                poll.register(sock.fileno(), select.POLLIN)
            monkeypatch.setattr(httpserver.Protocol, "readable", poll)
            assert balance.crowded() is crowded, watched
            balance.flags[1] = 1  # the other worker busy: closing would not help
            assert balance.crowded() is False
            balance.flags[1] = 0
        monkeypatch.setattr(httpserver.Protocol, "readable", select.poll())
        balance.begin()  # a second request of this worker runs (awaiting its body)
        assert balance.crowded() is True
        # One close per CLOSE_INTERVAL (10 ms): single-row clients would reconnect on
        # almost every answer otherwise.
        assert httpserver.Balance.CLOSE_INTERVAL == 0.01
        assert balance.should_close() is True
        assert balance.should_close() is False
        balance.closed_at -= 0.005
        assert balance.should_close() is False
        balance.closed_at -= 0.006
        assert balance.should_close() is True
        balance.closed_at -= 1
        balance.flags[1] = 1
        assert balance.should_close() is False  # not crowded: the interval is not spent
        balance.flags[1] = 0
        assert balance.should_close() is True
        balance.slot = -1  # a worker without a slot never closes
        assert balance.crowded() is False
    finally:
        for sock in (quiet_a, quiet_b, ready_a, ready_b):
            sock.close()


def test_balance_sees_any_idle_slot_and_closes_again_once_the_interval_is_spent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import select

    from mlcontainer import httpserver

    monkeypatch.setattr(httpserver.Protocol, "readable", select.poll())
    balance = httpserver.Balance(2)
    balance.slot = 1  # the idle worker holds the first slot
    balance.begin()
    balance.begin()
    assert balance.flags[:] == b"\0\1" and balance.crowded() is True
    # Exactly CLOSE_INTERVAL after the last close, a close is allowed again.
    now = httpserver.Balance.CLOSE_INTERVAL
    monkeypatch.setattr(httpserver.time, "monotonic", lambda: now)
    balance.closed_at = 0.0
    assert balance.should_close() is True and balance.closed_at == now
    assert balance.should_close() is False
