"""``training.tuning``: ranges checked at config time against the container's own
hyperparameter rules, at their boundaries, and the export of those rules kept current."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from mlops_templates import config, naming, tuning
from mlops_templates.errors import ConfigError

from .conftest import REPO

sys.path.insert(0, str(REPO / "container"))
from mlcontainer import train
from mlcontainer.errors import UserError


def _tuning(ranges: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"training": {"tuning": {"enabled": True, "ranges": ranges, **settings}}}


def _refused(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        config.parse(data, "mlops.yaml")
    return str(err.value)


def test_the_rules_export_is_current() -> None:
    check = subprocess.run([sys.executable, "scripts/gen_hyperparameter_rules.py", "--check"],
                           cwd=REPO, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", sorted(train.HYPERPARAMETERS))
def test_the_library_judges_values_as_the_container_does(name: str) -> None:
    values = ["-1", "0", "0.5", "1", "1.5", "2", "32", "33", "4096", "4097", "100000",
              "100001", str(2**31 - 1), str(2**31), "x", "hist", "cuda:0", "reg:gamma", "cpu"]
    for value in values:
        try:
            train.parse_hyperparameters({name: value})
            accepted = True
        except UserError:
            accepted = False
        assert tuning.rules()[name].accepts(value) == accepted, (name, value)


@pytest.mark.parametrize(
    ("ranges", "fragment"),
    [
        ({"eta": {"type": "continuous", "min": 0, "max": 0.5}},
         "ranges.eta.min: 0 is not a number in (0, 1]"),
        ({"eta": {"type": "continuous", "min": 0.1, "max": 1.0001}},
         "ranges.eta.max: 1.0001 is not a number in (0, 1]"),
        ({"max_depth": {"type": "integer", "min": 1, "max": 33}},
         "ranges.max_depth.max: 33 is not an integer in [0, 32]"),
        ({"max_depth": {"type": "integer", "min": 1.5, "max": 8}},
         "ranges.max_depth.min: 1.5 is not an integer in [0, 32]"),
        ({"seed": {"type": "integer", "min": 0, "max": 2**31}},
         "ranges.seed.max: 2147483648 is not an integer in [0, 2^31)"),
        ({"max_depth": {"type": "continuous", "min": 1, "max": 5}},
         "ranges.max_depth.type: continuous does not fit 'max_depth'"),
        ({"objective": {"type": "categorical", "values": ["reg:gamma", "reg:linear"]}},
         "ranges.objective.values: 'reg:linear' is not one of"),
        ({"colour": {"type": "integer", "min": 1, "max": 2}},
         "ranges.colour: the container has no hyperparameter 'colour'"),
        ({"gamma": {"type": "continuous", "min": 0, "max": 3, "scaling": "Logarithmic"}},
         "ranges.gamma.scaling: Logarithmic scaling needs values above 0"),
        ({"subsample": {"type": "continuous", "min": 0.5, "max": 1, "scaling": "ReverseLogarithmic"}},
         "ranges.subsample.scaling: ReverseLogarithmic scaling needs a continuous range within"),
        ({"max_depth": {"type": "integer", "min": 5, "max": 5}},
         "ranges.max_depth: min (5) must be below max (5)"),
        ({"max_depth": {"type": "integer", "min": 2}}, "an integer range takes min and max"),
        ({"objective": {"type": "categorical", "values": []}}, "a categorical range takes values"),
    ],
)
def test_a_range_the_container_would_refuse_is_refused(ranges: dict[str, Any], fragment: str) -> None:
    assert fragment in _refused(_tuning(ranges))


def test_ranges_at_the_container_boundaries_are_accepted() -> None:
    cfg = config.parse(_tuning({
        "eta": {"type": "continuous", "min": 0.0001, "max": 1},
        "max_depth": {"type": "integer", "min": 0, "max": 32},
        "seed": {"type": "integer", "min": 0, "max": 2**31 - 1},
        "subsample": {"type": "continuous", "min": 0.01, "max": 0.99, "scaling": "ReverseLogarithmic"},
        "objective": {"type": "categorical", "values": ["reg:squarederror", "count:poisson"]},
    }))
    assert set(cfg.training.tuning.ranges) == {"eta", "max_depth", "seed", "subsample", "objective"}


def test_limits_image_and_fixed_hyperparameters() -> None:
    assert "max_parallel_jobs (3) must not exceed max_jobs (2)" in _refused(
        _tuning({"eta": {"type": "continuous", "min": 0.1, "max": 0.2}}, max_jobs=2, max_parallel_jobs=3))
    assert "needs image 'custom'" in _refused(
        {"training": {"image": "xgboost", "tuning": {"enabled": True}}})
    assert "hyperparameters fixes eta, which tuning.ranges also tunes" in _refused(
        {"training": {"hyperparameters": {"eta": 0.1}, "tuning": {"enabled": True}}})
    # Left to their defaults, the tuned hyperparameters leave the fixed ones (the range wins).
    cfg = config.parse({"training": {"tuning": {"enabled": True}}})
    assert not set(cfg.training.fixed_hyperparameters) & set(cfg.training.tuning.ranges)
    off = config.parse({})
    assert off.training.fixed_hyperparameters == off.training.hyperparameters


def test_tuning_job_names_fit_in_32_characters() -> None:
    room = naming.LIMITS["tuning-job"] - naming.TUNING_JOB_AFTER_BASE
    assert room == 18
    fits = {"project": {"prefix": "ab", "name": "c" * (room - 3)}, **_tuning({})}
    fits["training"]["tuning"].pop("ranges")
    cfg = config.parse(fits)
    assert len(naming.tuning_job_name_format(cfg).format("0" * 8, "9999")) == 32
    long = {**fits, "project": {"prefix": "ab", "name": "c" * (room - 2)}}
    assert "leaves too little room for hyperparameter tuning job names" in _refused(long)
    # Without tuning the same name is fine.
    config.parse({"project": long["project"]})
