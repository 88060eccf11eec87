"""Safety: the CodeDeploy hooks test the new API version with a request the model accepts.

The pre-traffic hook sends ``SAMPLE_CSV`` to the endpoint as ``text/csv`` (the post-traffic
hook too, when set) and fails the deployment if the answer is not a prediction. A sample the
model refuses, or a row with its columns in the wrong order (still parseable, but not an
abalone), would test nothing. So the sample, as rendered in deploy-prd, is checked against
two independent sources:

* the container's own request parser, the one its server runs for ``text/csv``
  (``mlcontainer.inference.parse_body``);
* the data file the model is trained on, ``container/data/abalone.csv``: the sample must
  equal the features of one of its rows, column for column, in the file's header order.
"""

from __future__ import annotations

import csv
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlops_templates import config, stacks

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "container" / "data" / "abalone.csv"
from . import variants

CONFIGS = variants.paths()
IDS = [str(p.relative_to(REPO)) for p in CONFIGS]

if str(REPO / "container") not in sys.path:
    sys.path.insert(0, str(REPO / "container"))

from mlcontainer import inference  # the container is not an installed package

#: The data set's label: the one column a request leaves out.
LABEL = "rings"


@cache
def data_rows() -> tuple[list[str], list[list[str]]]:
    """The data file's feature header and every row's features (the label removed)."""
    with DATA.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        label = header.index(LABEL)
        rows = [row[:label] + row[label + 1:] for row in reader if row]
    return header[:label] + header[label + 1:], rows


def is_a_data_row(sample: str) -> bool:
    """``sample`` is, field by field, the features of a row of the data file."""
    fields = sample.split(",")
    _, rows = data_rows()
    for row in rows:
        if len(row) == len(fields) and row[0] == fields[0]:
            try:
                if all(float(a) == float(b) for a, b in zip(row[1:], fields[1:], strict=True)):
                    return True
            except ValueError:
                return False
    return False


def check_sample(sample: str) -> None:
    # The container's server parses it as one valid row (RequestError otherwise).
    rows = inference.parse_body(sample.encode(), inference.media_type("text/csv"))
    assert len(rows) == 1
    # The data file's own header, above the sample, is one the parser accepts: the file's
    # column order is the order the model reads.
    header, _ = data_rows()
    with_header = inference.parse_body(
        (",".join(header) + "\n" + sample).encode(), inference.media_type("text/csv")
    )
    assert np.array_equal(with_header.sex, rows.sex)
    assert np.array_equal(with_header.numeric, rows.numeric)
    # And it is a real abalone: the features of a row of the training data.
    assert is_a_data_row(sample), f"{sample!r} is not a row of {DATA.name}"


@cache
def _rendered(path: str) -> str:
    return json.dumps(stacks.module("deploy-prd").build(config.load(path)).to_dict())


def hook_functions(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The CodeDeploy hooks: the functions the API's DeploymentPreference names."""
    [preference] = [
        r["Properties"]["DeploymentPreference"] for r in t["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function" and "DeploymentPreference" in r["Properties"]
    ]
    hooks = preference["Hooks"]
    assert set(hooks) == {"PreTraffic", "PostTraffic"}
    return {kind: t["Resources"][ref["Ref"]]["Properties"] for kind, ref in hooks.items()}


def samples(t: dict[str, Any]) -> dict[str, str]:
    found = {}
    for kind, props in hook_functions(t).items():
        variables = props["Environment"]["Variables"]
        if kind == "PreTraffic" or "SAMPLE_CSV" in variables:
            found[kind] = variables["SAMPLE_CSV"]
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=IDS)
def test_hook_sample_request_is_a_valid_request_and_a_real_data_row(path: Path) -> None:
    t = json.loads(_rendered(str(path)))
    found = samples(t)
    assert "PreTraffic" in found, "the pre-traffic hook needs SAMPLE_CSV"
    for kind, sample in found.items():
        assert isinstance(sample, str), kind
        check_sample(sample)


def test_a_sample_with_swapped_columns_is_caught() -> None:
    t = json.loads(_rendered(str(REPO / "mlops.yaml")))
    sample = samples(t)["PreTraffic"]
    check_sample(sample)
    fields = sample.split(",")
    for i, j in ((1, 2), (4, 7), (5, 6)):  # measurements swapped: still parseable
        swapped = list(fields)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        inference.parse_body(",".join(swapped).encode(), "text/csv")
        with pytest.raises(AssertionError):
            check_sample(",".join(swapped))
    with pytest.raises(inference.RequestError):  # sex moved: refused by the server
        check_sample(",".join([fields[1], fields[0], *fields[2:]]))
    with pytest.raises(inference.RequestError):  # a column short: refused by the server
        check_sample(",".join(fields[:-1]))
    with pytest.raises(AssertionError):  # a made-up abalone
        check_sample(",".join([fields[0], *(["0.5"] * (len(fields) - 1))]))
