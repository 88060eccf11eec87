"""The monitor's checks: data quality and drift per feature, prediction drift, model quality.

**Drift distance: the Jensen-Shannon distance, base 2.** For the baseline's bin (or
category) probabilities ``p`` and the live ones ``q``, with ``m = (p + q) / 2``::

    JS(p, q) = sqrt( KL(p || m) / 2 + KL(q || m) / 2 ),   KL in bits

It is 0 for identical distributions and 1 for distributions with no bin in common, so one
threshold (``monitoring.drift_distance_threshold``) means the same for every feature,
numeric or categorical. It is symmetric and finite when a bin is empty on either side,
which a small window's histogram often is; the population stability index is unbounded and
undefined for an empty bin (``ln(q/p)``) unless each bin is padded with an arbitrary
epsilon that then moves the value. ``scipy.spatial.distance.jensenshannon(p, q, base=2)``
is the same quantity (the tests check it against SciPy).

A sample of ``n`` rows from the baseline's own distribution is not at distance 0: over
``k`` bins, ``8 n ln2 · JS²`` follows roughly a chi-square law with ``k - 1`` degrees of
freedom, so ten bins at ``n = 500`` give a 95th percentile near 0.08. Below
``drift_min_rows`` live rows a window's distances are reported but not judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcontainer.baseline import bin_counts

VALID, MISSING, INVALID = 0, 1, 2
#: How a quality metric breaches its threshold (``monitoring.quality.operator``).
OPERATORS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


def js_distance(p_counts: Sequence[float], q_counts: Sequence[float]) -> float:
    """The Jensen-Shannon distance (base 2) of two histograms over the same bins."""
    p = np.asarray(p_counts, dtype=np.float64)
    q = np.asarray(q_counts, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def numeric_column(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(the values as floats, NaN where not valid; a status per value): missing is an
    empty cell or JSON null, invalid anything that is not a finite number >= 0."""
    n = len(values)
    status = np.zeros(n, dtype=np.int8)
    try:
        # Every cell a number or a number's text: NumPy converts the column at once.
        x = np.array(values, dtype=np.float64)
    except (ValueError, TypeError):
        x = np.full(n, np.nan)
        for i, value in enumerate(values):
            if isinstance(value, str) and not value.strip():
                status[i] = MISSING
                continue
            try:
                x[i] = float(value)
            except (ValueError, TypeError):
                status[i] = INVALID
    with np.errstate(invalid="ignore"):
        bad = (status == VALID) & ~(np.isfinite(x) & (x >= 0))
    status[bad] = INVALID
    x[status != VALID] = np.nan
    return x, status


def categorical_column(values: Sequence[Any], categories: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(category index per value, -1 where not valid; a status per value). Codes are
    matched as the server matches them: exact, upper or lower case, then stripped."""
    index = {c: i for i, c in enumerate(categories)}
    index.update({c.lower(): i for i, c in enumerate(categories)})
    codes = np.full(len(values), -1, dtype=np.intp)
    status = np.zeros(len(values), dtype=np.int8)
    for i, value in enumerate(values):
        code = index.get(value) if isinstance(value, str) else None
        if code is None:
            text = value.strip() if isinstance(value, str) else None
            if text == "":
                status[i] = MISSING
                continue
            code = index.get(text) if text is not None else None
            if code is None:
                status[i] = INVALID
                continue
        codes[i] = code
    return codes, status


def _share(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def _judge(result: dict[str, Any], base_counts: Sequence[int], live: np.ndarray,
           threshold: float, judged: bool) -> None:
    if live.sum() > 0:
        result["distance"] = js_distance(base_counts, live)
        result["drifted"] = judged and result["distance"] > threshold
    result["histogram"]["baseline"] = _share(np.asarray(base_counts))
    result["histogram"]["live"] = _share(live)


def check_feature(values: Sequence[Any], statistics: dict[str, Any], limits: dict[str, Any],
                  threshold: float, judged: bool) -> dict[str, Any]:
    """Missing, invalid and out-of-range counts, and the drift distance, of one feature."""
    result: dict[str, Any] = {"type": statistics["type"], "rows": len(values),
                              "distance": None, "drifted": False}
    if statistics["type"] == "categorical":
        categories = statistics["categories"]
        codes, status = categorical_column(values, limits.get("domain", categories))
        live = np.bincount(codes[status == VALID], minlength=len(categories))[: len(categories)]
        result["histogram"] = {"labels": list(categories)}
        result["out_of_range"] = 0
    else:
        x, status = numeric_column(values)
        valid = x[status == VALID]
        edges = statistics["edges"]
        live = bin_counts(edges, valid)
        result["histogram"] = {"edges": list(edges)}
        result["out_of_range"] = int(np.sum((valid < limits["min"]) | (valid > limits["max"])))
        if len(valid):
            result["live"] = {"mean": float(valid.mean()), "min": float(valid.min()),
                              "max": float(valid.max())}
    result["missing"] = int(np.sum(status == MISSING))
    result["invalid"] = int(np.sum(status == INVALID))
    result["valid"] = int(np.sum(status == VALID))
    _judge(result, statistics["counts"], live, threshold, judged)
    return result


def check_predictions(predictions: Sequence[float], statistics: dict[str, Any] | None,
                      threshold: float, judged: bool) -> dict[str, Any]:
    """The drift of the model's answers from its answers on the test split."""
    x = np.asarray(predictions, dtype=np.float64)
    valid = x[np.isfinite(x)]
    result: dict[str, Any] = {"rows": len(x), "invalid": int(len(x) - len(valid)),
                              "distance": None, "drifted": False}
    if len(valid):
        result["live"] = {"mean": float(valid.mean()), "min": float(valid.min()),
                          "max": float(valid.max())}
    if statistics is not None:
        result["histogram"] = {"edges": list(statistics["edges"])}
        _judge(result, statistics["counts"], bin_counts(statistics["edges"], valid), threshold, judged)
    return result


def regression_quality(labels: Sequence[float], predictions: Sequence[float]) -> dict[str, Any]:
    """RMSE, MAE, MSE and R² of joined (label, prediction) pairs; R² only when the labels vary."""
    y = np.asarray(labels, dtype=np.float64)
    f = np.asarray(predictions, dtype=np.float64)
    keep = np.isfinite(y) & np.isfinite(f)
    y, f = y[keep], f[keep]
    metrics: dict[str, Any] = {"rows": len(y)}
    if not len(y):
        return metrics
    error = f - y
    mse = float(np.mean(error**2))
    metrics.update(mse=mse, rmse=math.sqrt(mse), mae=float(np.mean(np.abs(error))))
    total = float(np.sum((y - y.mean()) ** 2))
    if len(y) >= 2 and total > 0:
        metrics["r2"] = 1.0 - float(np.sum(error**2)) / total
    return metrics
