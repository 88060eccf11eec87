"""One monitoring run, from files to the report: the window's traffic, checked feature by
feature against the baseline, its predictions against the test split's, and the labelled
predictions' error.

The report (``report.json``) is the one document the metrics, the HTML page and the local
scripts read::

    {"window": {"start", "end", "lookback_hours"},
     "endpoint", "baseline": {"rows", "features"},
     "records": {"files", "lines", "records", "rows", "synthetic", "outside_window",
                 "unreadable", "malformed_rows", "failed_answers"},
     "features": {<name>: {"type", "rows", "valid", "missing", "invalid", "out_of_range",
                           "distance", "drifted", "watched", "histogram", "live"}},
     "prediction": {"rows", "invalid", "distance", "drifted", "histogram", "live"},
     "drift": {"method", "threshold", "min_rows", "judged", "watched", "drifted", "count"},
     "model_quality": {"ground_truth_files", "ground_truth_rows", "unmatched", "mismatched",
                       "rows", "judged", "min_rows", "rmse", "mae", "mse", "r2"},
     "alarms": {"drift": {"rule", "breaching"}, "quality": {"rule", "breaching"}}}
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from mlcontainer.baseline import Baseline
from mlcontainer.capture import (
    GroundTruth,
    Traffic,
    Window,
    parse_time,
    read_batch,
    read_capture,
    read_ground_truth,
)
from mlcontainer.checks import (
    OPERATORS,
    check_feature,
    check_predictions,
    regression_quality,
)
from mlcontainer.errors import UserError

METHOD = "Jensen-Shannon distance (base 2) over the baseline's bins"


def window_of(start: str | None, end: str | None, lookback: timedelta) -> Window:
    """The window of two ISO 8601 times (either may be empty: open)."""
    try:
        first = parse_time(start) if start else None
        last = parse_time(end) if end else None
    except ValueError as err:
        raise UserError(f"window bounds must be ISO 8601 times ({err})") from None
    if first and last and first >= last:
        raise UserError(f"the window starts ({start}) at or after it ends ({end})")
    return Window(first, last, lookback)


def _join(traffic: Traffic, truth: GroundTruth) -> tuple[list[float], list[float], dict[str, int]]:
    """Labels and predictions of the requests ground truth names, row by row."""
    labels: list[float] = []
    predictions: list[float] = []
    unmatched = mismatched = 0
    for key, values in truth.labels.items():
        answers = traffic.answers.get(key)
        if answers is None:
            unmatched += 1
        elif len(answers) != len(values):
            mismatched += 1
        else:
            labels += values
            predictions += answers
    return labels, predictions, {"unmatched": unmatched, "mismatched": mismatched}


def _quality(traffic: Traffic, truth: GroundTruth, settings: Any) -> dict[str, Any]:
    labels, predictions, misses = _join(traffic, truth)
    metrics = regression_quality(labels, predictions)
    judged = metrics["rows"] >= settings.quality_min_rows and "rmse" in metrics
    return {"ground_truth_files": truth.files, "ground_truth_records": truth.records,
            "ground_truth_rows": sum(len(v) for v in truth.labels.values()),
            "unreadable": truth.unreadable, "duplicates": truth.duplicates, **misses,
            **metrics, "judged": judged, "min_rows": settings.quality_min_rows}


def _records(traffic: Traffic) -> dict[str, int]:
    return {"files": traffic.files, "lines": traffic.lines, "records": traffic.records,
            "rows": len(traffic.rows), "synthetic": traffic.synthetic,
            "outside_window": traffic.outside, "unreadable": traffic.unreadable,
            "malformed_rows": traffic.malformed_rows, "failed_answers": traffic.failed_answers,
            "duplicate_ids": traffic.duplicate_ids}


def _alarms(drift: dict[str, Any], quality: dict[str, Any], settings: Any) -> dict[str, Any]:
    metric, op, threshold = settings.quality_metric, settings.quality_operator, settings.quality_threshold
    value = quality.get(metric)
    breaching = bool(quality["judged"] and value is not None
                     and OPERATORS[op](float(value), float(threshold)))
    return {
        "drift": {"rule": f"drifted features >= {settings.drift_violations}",
                  "breaching": drift["count"] >= settings.drift_violations},
        "quality": {"rule": f"{metric} {op} {threshold:g}", "value": value, "breaching": breaching},
    }


def analyse(capture: Path, ground_truth: Path, baseline: Baseline, window: Window,
            settings: Any) -> dict[str, Any]:
    """The report of one window (see the module docstring)."""
    columns = tuple(baseline.features)
    if getattr(settings, "input_format", "capture") == "batch":
        traffic = read_batch(capture)
    else:
        traffic = read_capture(capture, window, columns, settings.synthetic_prefix)
    judged = len(traffic.rows) >= settings.drift_min_rows
    watched = settings.drift_features or tuple(columns)
    unknown = sorted(set(watched) - set(columns))
    if unknown:
        raise UserError(f"drift features {', '.join(unknown)} are not in the baseline "
                        f"({', '.join(columns)})")
    by_column = list(zip(*traffic.rows)) if traffic.rows else [()] * len(columns)
    features = {}
    for name, values in zip(columns, by_column):
        result = check_feature(values, baseline.statistics["features"][name],
                               baseline.constraints["features"][name], settings.drift_threshold, judged)
        features[name] = {**result, "watched": name in watched}
    drifted = [name for name, f in features.items() if f["drifted"] and f["watched"]]
    prediction = check_predictions(traffic.predictions, baseline.prediction,
                                   settings.drift_threshold, judged)
    drift = {"method": METHOD, "threshold": settings.drift_threshold,
             "min_rows": settings.drift_min_rows, "judged": judged, "watched": list(watched),
             "drifted": drifted, "count": len(drifted)}
    quality = _quality(traffic, read_ground_truth(ground_truth), settings)
    return {
        "window": {"start": window.start.isoformat() if window.start else None,
                   "end": window.end.isoformat() if window.end else None,
                   "lookback_hours": window.lookback.total_seconds() / 3600},
        "endpoint": settings.endpoint,
        "baseline": {"rows": baseline.statistics.get("rows"), "features": list(columns)},
        "records": _records(traffic),
        "features": features,
        "prediction": prediction,
        "drift": drift,
        "model_quality": quality,
        "alarms": _alarms(drift, quality, settings),
    }
