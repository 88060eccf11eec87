"""``evaluate``: score the trained model on the test split (SageMaker Processing job).

Inputs: ``/opt/ml/processing/model/model.tar.gz`` (this container's model, or the
built-in XGBoost algorithm's ``xgboost-model``, scored on the same encoded features it
was trained on) and ``/opt/ml/processing/test/*.csv`` (raw rows with ``rings``).
Output: ``/opt/ml/processing/evaluation/evaluation.json`` in the SageMaker model quality
report shape::

    {"regression_metrics": {"mse":  {"value": f, "standard_deviation": f},
                            "rmse": {...}, "mae": {...}, "r2": {...}}}

Each standard deviation is a seeded bootstrap estimate (1,000 resamples of the test
rows): how much the metric would move on another test set of the same size.

With the train split's feature profile (``/opt/ml/processing/feature_baseline``, written by
``preprocess``), it also writes the monitoring baseline to ``/opt/ml/processing/baseline``:
that profile plus the distribution of the model's predictions on the test split
(:mod:`mlcontainer.baseline`), which the ``monitor`` job compares live answers with.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from mlcontainer import paths, privileges
from mlcontainer.errors import UserError
from mlcontainer.jobs import log, run_job

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlcontainer evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="model.tar.gz or an unpacked model directory "
                             "(default: <prefix>/processing/model/model.tar.gz)")
    parser.add_argument("--test", type=Path, default=None,
                        help="test CSV file or directory (default: <prefix>/processing/test)")
    parser.add_argument("--output", type=Path, default=None,
                        help="output directory (default: <prefix>/processing/evaluation)")
    parser.add_argument("--feature-baseline", type=Path, default=None,
                        help="the train split's feature profile (default: "
                             "<prefix>/processing/feature_baseline; skipped when absent)")
    parser.add_argument("--baseline-output", type=Path, default=None,
                        help="where the monitoring baseline goes (default: "
                             "<prefix>/processing/baseline)")
    return parser


def regression_metrics(y_true, y_pred, *, samples: int = BOOTSTRAP_SAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> dict[str, dict[str, float]]:
    """MSE, RMSE, MAE and R² with bootstrap standard deviations."""
    import numpy as np

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if len(y_true) < 2:
        raise UserError(f"the test set has {len(y_true)} row(s); at least 2 are needed")

    def compute(truth: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
        error = pred - truth
        mse = np.mean(error**2, axis=-1)
        total = np.sum((truth - truth.mean(axis=-1, keepdims=True)) ** 2, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(total > 0, 1 - np.sum(error**2, axis=-1) / total, np.nan)
        return {"mse": mse, "rmse": np.sqrt(mse), "mae": np.mean(np.abs(error), axis=-1),
                "r2": r2}

    point = compute(y_true, y_pred)
    index = np.random.default_rng(seed).integers(0, len(y_true), size=(samples, len(y_true)))
    spread = compute(y_true[index], y_pred[index])
    return {name: {"value": float(point[name]),
                   "standard_deviation": float(np.nanstd(spread[name]))}
            for name in ("mse", "rmse", "mae", "r2")}


def _unpack(model: Path, into: Path) -> Path:
    if model.is_dir():
        return model
    if not model.is_file():
        raise UserError(f"model {model} does not exist")
    try:
        with tarfile.open(model) as archive:
            # The "data" filter refuses absolute paths, links out of the tree and devices.
            archive.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as err:
        raise UserError(f"{model.name}: cannot unpack ({err})") from None
    return into


def _test_files(test: Path) -> list[Path]:
    if test.is_file():
        return [test]
    files = sorted(p for p in test.rglob("*.csv") if p.is_file()) if test.is_dir() else []
    if not files:
        raise UserError(f"no test data: {test} has no *.csv file")
    return files


def write_monitoring_baseline(features: Path, output: Path, predictions) -> None:
    """The feature profile of ``features`` plus the ``predictions``' distribution."""
    import json

    from mlcontainer import baseline

    try:
        statistics = json.loads((features / baseline.STATISTICS).read_text(encoding="utf-8"))
        constraints = json.loads((features / baseline.CONSTRAINTS).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{features}: unreadable feature baseline ({err})") from None
    baseline.write(output, baseline.with_predictions(statistics, predictions), constraints)
    log(f"monitoring baseline: {len(statistics['features'])} features and the prediction "
        f"distribution of {len(predictions)} test rows -> {output}")


def run(model: Path, test: Path, output: Path, features: Path | None = None,
        baseline_output: Path | None = None) -> dict[str, Any]:
    import numpy as np

    from mlcontainer.model import Predictor, cpu_count
    from mlcontainer.schema import parse_csv

    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        predictor = Predictor.from_dir(_unpack(model, Path(scratch)), nthread=cpu_count())
    log(f"model: {predictor.kind} ({predictor.booster.num_boosted_rounds()} rounds, "
        f"{len(predictor.spec.feature_names)} features)")
    truth, predictions = [], []
    for path in _test_files(test):
        rows = parse_csv(path.read_text(encoding="utf-8"), where=path.name, label="required")
        truth.append(rows.label)
        predictions.append(predictor.predict(rows))
    metrics = regression_metrics(np.concatenate(truth), np.concatenate(predictions))
    report = {"regression_metrics": metrics}
    output.mkdir(parents=True, exist_ok=True)
    (output / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    log(f"{sum(len(t) for t in truth)} test rows: " + " ".join(
        f"{name}={m['value']:.4f} (sd {m['standard_deviation']:.4f})" for name, m in metrics.items()))
    if features is not None and baseline_output is not None and features.is_dir():
        write_monitoring_baseline(features, baseline_output, np.concatenate(predictions))
    return report


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    model = args.model or paths.evaluation_model_file()
    test = args.test or paths.evaluation_test_dir()
    output = args.output or paths.evaluation_output_dir()
    features = args.feature_baseline or paths.feature_baseline_dir()
    baseline_output = args.baseline_output or paths.monitoring_baseline_dir()
    readable = [model, test] + ([features] if features.is_dir() else [])
    privileges.drop_for_job(readable=readable,
                            writable=[output, baseline_output, paths.output_dir()])
    return run_job("evaluate", lambda: run(model, test, output, features, baseline_output),
                   paths.message_file(), reason_limit=1024)
