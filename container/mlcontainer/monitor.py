"""``monitor``: check an endpoint's captured traffic against the training baseline
(SageMaker Processing job, network-isolated: it calls no AWS API).

Inputs (each optional, an empty window is a normal outcome):

* ``/opt/ml/processing/input/capture``: the endpoint's data-capture files of the window
  (JSON Lines, any folder depth: :mod:`mlcontainer.capture`), or with ``--input-format
  batch`` a batch transform's joined output (``<row id>,<features>,<prediction>`` lines);
* ``/opt/ml/processing/input/ground_truth``: ground-truth files uploaded in the window;
* ``/opt/ml/processing/baseline``: ``statistics.json`` and ``constraints.json``
  (:mod:`mlcontainer.baseline`; required).

Outputs, in ``/opt/ml/processing/monitoring``:

* ``report.json``: counts, per-feature missing / invalid / out-of-range values and drift
  distances, the prediction distribution, model quality, and what each alarm would make of
  this run;
* ``report.html``: the same for people, self-contained (inline SVG plots of the baseline
  against the live distribution of every feature);
* ``metrics.json``: exactly the body of a CloudWatch ``PutMetricData`` request
  (``{"Namespace": ..., "MetricData": [...]}``), which the monitor state machine publishes.

Every setting is an option with an environment variable as its default (the state machine
passes them as the job's Environment): see ``mlcontainer monitor --help``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlcontainer import paths, privileges
from mlcontainer.errors import UserError
from mlcontainer.jobs import log, run_job

#: CloudWatch metric names (``contract.MONITOR_METRICS`` names the same, for the alarms
#: and the dashboard; a test keeps them equal).
METRICS = {
    "FeaturesDrifted": "Count", "FeatureDrift": "None", "PredictionDrift": "None",
    "Records": "Count", "Rows": "Count", "SyntheticRecords": "Count",
    "MissingValues": "Count", "InvalidValues": "Count", "OutOfRangeValues": "Count",
    "GroundTruthRows": "Count", "JoinedRows": "Count",
    "RMSE": "None", "MAE": "None", "R2": "None", "MonitorFailed": "Count",
}
QUALITY_METRICS = {"rmse": "RMSE", "mae": "MAE", "r2": "R2"}
OPERATORS = (">", ">=", "<", "<=")
#: PutMetricData takes at most 1,000 metrics and 1 MB per request (CloudWatch API
#: reference, PutMetricData); the state passes the file on, so it stays far below both.
MAX_METRICS = 1000
MAX_METRICS_BYTES = 200_000


@dataclass(frozen=True)
class Settings:
    """What the job compares with what, and how strictly (see ``--help``)."""

    endpoint: str = "local"
    namespace: str = "mlops/local"
    synthetic_prefix: str = "synthetic-"
    drift_threshold: float = 0.1
    drift_features: tuple[str, ...] = ()
    drift_min_rows: int = 500
    drift_violations: int = 1
    quality_metric: str = "rmse"
    quality_operator: str = ">"
    quality_threshold: float = 3.0
    quality_min_rows: int = 30
    lookback_hours: float = 24.0
    input_format: str = "capture"


#: option -> (environment variable, type, help); the defaults are Settings'.
OPTIONS: dict[str, tuple[str, type, str]] = {
    "endpoint": ("ENDPOINT_NAME", str, "the endpoint (a metric dimension)"),
    "namespace": ("METRICS_NAMESPACE", str, "CloudWatch namespace of metrics.json"),
    "synthetic_prefix": ("SYNTHETIC_PREFIX", str, "inference ids of synthetic requests start so"),
    "drift_threshold": ("DRIFT_THRESHOLD", float, "JS distance above which a feature drifted"),
    "drift_features": ("DRIFT_FEATURES", str, "comma-separated features the drift count watches (default: all)"),
    "drift_min_rows": ("DRIFT_MIN_ROWS", int, "fewest live rows whose drift is judged"),
    "drift_violations": ("DRIFT_VIOLATIONS", int, "drifted features at which the drift alarm breaches"),
    "quality_metric": ("QUALITY_METRIC", str, "rmse, mae or r2: the quality alarm's metric"),
    "quality_operator": ("QUALITY_OPERATOR", str, ">, >=, < or <=: how the metric breaches"),
    "quality_threshold": ("QUALITY_THRESHOLD", float, "the quality alarm's threshold"),
    "quality_min_rows": ("QUALITY_MIN_ROWS", int, "fewest joined rows whose quality is judged"),
    "lookback_hours": ("GROUND_TRUTH_LOOKBACK_HOURS", float,
                       "how old a prediction may be and still be joined with a label"),
    "input_format": ("INPUT_FORMAT", str,
                     "capture (an endpoint's data capture) or batch (a transform's joined output)"),
}
INPUT_FORMATS = ("capture", "batch")
WINDOW_ENV = ("WINDOW_START", "WINDOW_END")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlcontainer monitor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, env, directory in (("--capture", None, "capture_dir"),
                                 ("--ground-truth", None, "ground_truth_dir"),
                                 ("--baseline", None, "monitoring_baseline_dir"),
                                 ("--output", None, "monitor_output_dir")):
        parser.add_argument(flag, type=Path, default=None,
                            help=f"default: paths.{directory}() under $ML_PREFIX or /opt/ml")
    parser.add_argument("--window-start", default=os.environ.get(WINDOW_ENV[0]),
                        help="first inference time checked, ISO 8601 ($WINDOW_START; default: all)")
    parser.add_argument("--window-end", default=os.environ.get(WINDOW_ENV[1]),
                        help="end of the window, excluded ($WINDOW_END; default: all)")
    defaults = Settings()
    for name, (env, kind, text) in OPTIONS.items():
        default = os.environ.get(env)
        if default is None:
            value = getattr(defaults, name)
            default = ",".join(value) if isinstance(value, tuple) else str(value)
        parser.add_argument("--" + name.replace("_", "-"), default=default,
                            help=f"{text} (${env}; default {default!r})")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Typed, checked settings from parsed options."""
    values: dict[str, Any] = {}
    for name, (env, kind, _) in OPTIONS.items():
        raw = getattr(args, name)
        try:
            values[name] = kind(raw)
        except ValueError:
            raise UserError(f"--{name.replace('_', '-')} (${env}): {raw!r} is not a {kind.__name__}") from None
    values["drift_features"] = tuple(f for f in values["drift_features"].split(",") if f)
    if values["quality_metric"] not in QUALITY_METRICS:
        raise UserError(f"quality metric {values['quality_metric']!r}: use {', '.join(QUALITY_METRICS)}")
    if values["input_format"] not in INPUT_FORMATS:
        raise UserError(f"input format {values['input_format']!r}: use {', '.join(INPUT_FORMATS)}")
    if values["quality_operator"] not in OPERATORS:
        raise UserError(f"quality operator {values['quality_operator']!r}: use {', '.join(OPERATORS)}")
    return Settings(**values)


def run(capture: Path, ground_truth: Path, baseline_dir: Path, output: Path,
        window: Any, settings: Settings) -> dict[str, Any]:
    """Check the window and write the three outputs; returns the report."""
    from mlcontainer import report_html
    from mlcontainer.analysis import analyse
    from mlcontainer.baseline import Baseline

    report = analyse(capture, ground_truth, Baseline.load(baseline_dir), window, settings)
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (output / "report.html").write_text(report_html.render(report), encoding="utf-8")
    body = json.dumps(metric_data(report, settings), separators=(",", ":"))
    if len(body) > MAX_METRICS_BYTES:  # pragma: no cover - a few dozen metrics
        raise UserError(f"metrics.json has {len(body)} bytes, over {MAX_METRICS_BYTES}")
    (output / "metrics.json").write_text(body + "\n", encoding="utf-8")
    log(summary(report))
    return report


def _datum(name: str, value: float, dimensions: dict[str, str]) -> dict[str, Any]:
    return {"MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            "Value": round(float(value), 6), "Unit": METRICS[name]}


def metric_data(report: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The PutMetricData body of a report: the drifted-feature count the drift alarm
    watches, each feature's distance, record counts, the quality metrics and status 0.
    Distances and quality metrics exist only where the run judged them (CloudWatch
    takes no NaN): an alarm then sees missing data, which is not breaching."""
    endpoint = {"EndpointName": settings.endpoint}
    counts = report["records"]
    quality = report["model_quality"]
    data = [
        _datum("FeaturesDrifted", report["drift"]["count"], endpoint),
        _datum("Records", counts["records"], endpoint),
        _datum("Rows", counts["rows"], endpoint),
        _datum("SyntheticRecords", counts["synthetic"], endpoint),
        _datum("GroundTruthRows", quality["ground_truth_rows"], endpoint),
        _datum("JoinedRows", quality["rows"], endpoint),
        _datum("MonitorFailed", 0, endpoint),
    ]
    for kind, key in (("MissingValues", "missing"), ("InvalidValues", "invalid"),
                      ("OutOfRangeValues", "out_of_range")):
        total = sum(f[key] for f in report["features"].values())
        data.append(_datum(kind, total, endpoint))
    if report["drift"]["judged"]:
        for name, feature in report["features"].items():
            if feature["distance"] is not None:
                data.append(_datum("FeatureDrift", feature["distance"], {**endpoint, "Feature": name}))
        if report["prediction"]["distance"] is not None:
            data.append(_datum("PredictionDrift", report["prediction"]["distance"], endpoint))
    if quality["judged"]:
        for metric, name in QUALITY_METRICS.items():
            if metric in quality:
                data.append(_datum(name, quality[metric], endpoint))
    if len(data) > MAX_METRICS:  # pragma: no cover - one per feature
        raise UserError(f"{len(data)} metrics, over PutMetricData's {MAX_METRICS}")
    return {"Namespace": settings.namespace, "MetricData": data}


def summary(report: dict[str, Any]) -> str:
    """One line for the job's log and the local scripts."""
    counts, drift, quality = report["records"], report["drift"], report["model_quality"]
    text = (f"{counts['rows']} live rows in {counts['records']} records "
            f"({counts['synthetic']} synthetic left out); ")
    if drift["judged"]:
        text += (f"{drift['count']} watched feature(s) drifted"
                 + (f": {', '.join(drift['drifted'])}" if drift["drifted"] else ""))
    else:
        text += f"drift not judged (fewer than {drift['min_rows']} rows)"
    if quality["judged"]:
        text += (f"; {quality['rows']} labelled rows: rmse={quality['rmse']:.4f} "
                 f"mae={quality['mae']:.4f}" + (f" r2={quality['r2']:.4f}" if "r2" in quality else ""))
    return text


def main(argv: list[str]) -> int:
    from mlcontainer.analysis import window_of

    args = _parser().parse_args(argv)
    capture = args.capture or paths.capture_dir()
    ground_truth = args.ground_truth or paths.ground_truth_dir()
    baseline_dir = args.baseline or paths.monitoring_baseline_dir()
    output = args.output or paths.monitor_output_dir()
    readable = [p for p in (capture, ground_truth, baseline_dir) if p.exists()]
    privileges.drop_for_job(readable=readable, writable=[output, paths.output_dir()])

    def body() -> None:
        settings = settings_from(args)
        window = window_of(args.window_start, args.window_end, timedelta(hours=settings.lookback_hours))
        run(capture, ground_truth, baseline_dir, output, window, settings)

    return run_job("monitor", body, paths.message_file(), reason_limit=1024)
