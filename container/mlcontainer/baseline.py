"""The monitoring baseline: what the training data (and the model's answers) looked like.

``preprocess`` profiles the train split into ``feature_baseline/`` and ``evaluate`` adds
the distribution of the model's predictions on the test split, writing the two files the
``monitor`` job compares live traffic with (and the deploy stack takes as Parameters)::

    statistics.json   per feature: count, mean, spread, quantiles and the histogram
                      (numeric: bin edges at the deciles of the train split, and the
                      count of train rows per bin; ``sex``: the count per category);
                      "prediction": the same for the model's test-split predictions
    constraints.json  per feature: what counts as valid and in range (numeric: the
                      data contract's finite number >= 0, and the train split's
                      [min, max]; ``sex``: its domain)

Bins are equal-frequency on the train split (each holds about a tenth of it), so every
bin the drift distance compares has real mass on the baseline side, and a value below the
first edge or above the last lands in the outer bins (and is counted out of range).
Edges repeat where a feature has ties; repeats are merged into one bin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlcontainer.errors import UserError

FORMAT = "mlops-templates/monitoring-baseline"
VERSION = 1
STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
#: Equal-frequency bins per numeric feature.
BINS = 10
PREDICTION = "prediction"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def quantile_edges(values: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin edges at the quantiles of ``values`` (first = min, last = max), repeats merged."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return edges if len(edges) > 1 else np.repeat(edges, 2)


def bin_index(edges: np.ndarray | list[float], values: np.ndarray) -> np.ndarray:
    """The bin of each value: ``i`` for ``edges[i] <= v < edges[i+1]``, the outer bins open
    (below the first edge: bin 0; at or above the last interior edge: the last bin)."""
    return np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), values, side="right")


def bin_counts(edges: np.ndarray | list[float], values: np.ndarray) -> np.ndarray:
    return np.bincount(bin_index(edges, values), minlength=len(edges) - 1)


def numeric_profile(values: np.ndarray) -> dict[str, Any]:
    """Statistics and histogram of finite values (at least one)."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        raise UserError("cannot profile a feature without values")
    edges = quantile_edges(values)
    return {
        "type": "numeric",
        "count": len(values),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {f"p{round(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES},
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in bin_counts(edges, values)],
    }


def categorical_profile(codes: np.ndarray, categories: tuple[str, ...]) -> dict[str, Any]:
    """Counts per category of integer ``codes`` (indices into ``categories``)."""
    counts = np.bincount(np.asarray(codes, dtype=np.intp), minlength=len(categories))
    return {
        "type": "categorical",
        "count": len(codes),
        "categories": list(categories),
        "counts": [int(c) for c in counts[: len(categories)]],
    }


def feature_baseline(rows: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics, constraints) of validated :class:`~mlcontainer.schema.Rows`."""
    from mlcontainer.schema import FEATURES, NUMERIC, SEX_VALUES

    features: dict[str, Any] = {FEATURES[0]: categorical_profile(rows.sex, SEX_VALUES)}
    limits: dict[str, Any] = {FEATURES[0]: {"type": "categorical", "domain": list(SEX_VALUES)}}
    for j, name in enumerate(NUMERIC):
        profile = numeric_profile(rows.numeric[:, j])
        features[name] = profile
        limits[name] = {"type": "numeric", "valid": "finite number >= 0",
                        "min": profile["min"], "max": profile["max"]}
    head = {"format": FORMAT, "version": VERSION}
    statistics = {**head, "kind": "statistics", "rows": len(rows), "source": "train split",
                  "features": features}
    return statistics, {**head, "kind": "constraints", "features": limits}


def with_predictions(statistics: dict[str, Any], predictions: np.ndarray) -> dict[str, Any]:
    """``statistics`` with the distribution of the model's (test-split) predictions."""
    finite = np.asarray(predictions, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return {**statistics, PREDICTION: {**numeric_profile(finite), "source": "test split"}}


def write(directory: Path, statistics: dict[str, Any], constraints: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in ((STATISTICS, statistics), (CONSTRAINTS, constraints)):
        (directory / name).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def _find(directory: Path, name: str) -> Path:
    """``name`` anywhere under ``directory`` (SageMaker places each input in a folder)."""
    if directory.is_file() and directory.name == name:
        return directory
    found = sorted(directory.rglob(name)) if directory.is_dir() else []
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} files named"
        raise UserError(f"the baseline needs one {name} under {directory}; found {what} {name}")
    return found[0]


def _load(directory: Path, name: str, kind: str) -> dict[str, Any]:
    path = _find(directory, name)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable JSON document ({err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("kind") != kind:
        raise UserError(f"{path}: not a {FORMAT} {kind} file (Model Monitor's analyzer writes "
                        "files of the same names: is monitoring.engine builtin?)")
    if document.get("version") != VERSION:
        raise UserError(f"{path}: version {document.get('version')!r}; this monitor reads {VERSION}")
    return document


@dataclass(frozen=True)
class Baseline:
    """Both files, read back and checked."""

    statistics: dict[str, Any]
    constraints: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> Baseline:
        statistics = _load(directory, STATISTICS, "statistics")
        constraints = _load(directory, CONSTRAINTS, "constraints")
        missing = sorted(set(statistics["features"]) ^ set(constraints["features"]))
        if missing:
            raise UserError(f"{directory}: statistics and constraints disagree on the features "
                            f"{', '.join(missing)}")
        return cls(statistics, constraints)

    @property
    def features(self) -> list[str]:
        return list(self.statistics["features"])

    @property
    def prediction(self) -> dict[str, Any] | None:
        return self.statistics.get(PREDICTION)
