"""Hyperparameter tuning's config-time checks: the project container's own rules, and the
ranges of ``training.tuning`` held against them.

The rules are written once, in the container (``container/mlcontainer/train.py``,
``HYPERPARAMETERS``); the library is installed without the container's code and reads
their export, ``data/container_hyperparameters.json`` (``scripts/gen_hyperparameter_rules.py``;
a test fails when it is stale). A range is accepted when every value it can produce is
one the container's ``train`` accepts: the rules are intervals, so both ends of a numeric
range are checked, and each value of a categorical one.

SageMaker's own limits on ranges (``CreateHyperParameterTuningJob``, "Define Hyperparameter
Ranges", https://docs.aws.amazon.com/sagemaker/latest/dg/automatic-model-tuning-define-ranges.html):
logarithmic scaling only for ranges whose values are all greater than 0, reverse
logarithmic only for continuous ranges within 0 <= x < 1.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

#: The container's metric definitions (``train`` prints ``[n] train-rmse=<f>;
#: validation-rmse=<f>;`` per round, and the kept round's values last). The tuning
#: objective is the validation metric, minimised.
METRIC_DEFINITIONS = (
    {"Name": "train:rmse", "Regex": "train-rmse=([0-9.]+);"},
    {"Name": "validation:rmse", "Regex": "validation-rmse=([0-9.]+);"},
)
OBJECTIVES = {"validation:rmse": "Minimize"}


@dataclass(frozen=True)
class Rule:
    """One hyperparameter's rule, as the container states it."""

    name: str
    type: str  # integer | continuous | categorical
    rule: str
    minimum: float | None = None
    maximum: float | None = None
    minimum_open: bool = False
    maximum_open: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None

    def parse(self, value: Any) -> Any:
        """``value`` as ``train`` reads it (every hyperparameter arrives as a string), or
        ``None`` where it would refuse it."""
        text = str(value).strip()
        try:
            if self.type == "integer":
                number = float(text)
                return int(number) if number.is_integer() else None
            if self.type == "continuous":
                return float(text)
        except (ValueError, OverflowError):
            return None
        return text

    def accepts(self, value: Any) -> bool:
        parsed = self.parse(value)
        if parsed is None:
            return False
        if self.choices and parsed not in self.choices:
            return False
        if self.pattern is not None and re.fullmatch(self.pattern, parsed) is None:
            return False
        low, high = self.minimum, self.maximum
        if low is not None and (parsed < low or (self.minimum_open and parsed == low)):
            return False
        return high is None or not (parsed > high or (self.maximum_open and parsed == high))


@cache
def rules() -> dict[str, Rule]:
    """The container's hyperparameters by name."""
    path = files("mlops_templates").joinpath("data/container_hyperparameters.json")
    data = json.loads(path.read_text("utf-8"))["hyperparameters"]
    return {
        name: Rule(
            name=name,
            type=spec["type"],
            rule=spec["rule"],
            minimum=spec["minimum"],
            maximum=spec["maximum"],
            minimum_open=spec["minimum_open"],
            maximum_open=spec["maximum_open"],
            choices=tuple(spec["choices"]),
            pattern=spec["pattern"],
        )
        for name, spec in data.items()
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def check_range(name: str, kind: str, low: Any, high: Any, scaling: str, values: list[Any]) -> None:
    """Raise ``ValueError`` naming the field, the value and the rule when the range of
    hyperparameter ``name`` could produce a value the container refuses."""
    rule = rules().get(name)
    where = f"ranges.{name}"
    if rule is None:
        raise ValueError(
            f"{where}: the container has no hyperparameter '{name}' (known: {', '.join(sorted(rules()))})"
        )
    if kind == "categorical":
        for value in values:
            if not rule.accepts(value):
                raise ValueError(
                    f"{where}.values: {value!r} is not {rule.rule} (the container's rule for {name})"
                )
        return
    if rule.type == "categorical" or (kind == "continuous") != (rule.type == "continuous"):
        raise ValueError(
            f"{where}.type: {kind} does not fit '{name}', which is {rule.rule}; use "
            f"{'an integer' if rule.type == 'integer' else 'a ' + rule.type} range"
        )
    for field, value in (("min", low), ("max", high)):
        if not rule.accepts(value):
            raise ValueError(
                f"{where}.{field}: {_number(value)} is not {rule.rule} (the container's rule for {name})"
            )
    if low >= high:
        raise ValueError(f"{where}: min ({_number(low)}) must be below max ({_number(high)})")
    if scaling == "Logarithmic" and low <= 0:
        raise ValueError(
            f"{where}.scaling: Logarithmic scaling needs values above 0 (got min {_number(low)})"
        )
    if scaling == "ReverseLogarithmic" and (kind != "continuous" or low < 0 or high >= 1):
        raise ValueError(
            f"{where}.scaling: ReverseLogarithmic scaling needs a continuous range within "
            f"0 <= x < 1 (got {_number(low)}..{_number(high)})"
        )
