"""The model sections: training (time, RMSE, a linear baseline) and in-process prediction."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchlib.stacks import local

RMSE_TARGET = 2.20


def linear_baseline_rmse(jobs: Path) -> float:
    """Ordinary least squares on one-hot sex + the seven measurements (plus intercept)."""
    import numpy as np

    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer.schema import parse_csv

    def design(split: str) -> tuple[Any, Any]:
        rows = parse_csv((jobs / "processing/output" / split / f"{split}.csv").read_text(),
                         label="required")
        onehot = np.eye(3)[rows.sex]
        return np.column_stack([onehot, rows.numeric]), rows.label

    x_train, y_train = design("train")
    x_test, y_test = design("test")
    coef, *_ = np.linalg.lstsq(x_train, y_train, rcond=None)  # one-hot columns sum to 1
    return float(np.sqrt(np.mean((x_test @ coef - y_test) ** 2)))


def training(run: Any, say: Any) -> dict[str, Any]:
    """Preprocess, train and evaluate with ``run`` (a :class:`local.Lifecycle`)."""
    hyperparameters = run.hyperparameters
    say(f"[model] training ({', '.join(f'{k}={v}' for k, v in sorted(hyperparameters.items()))})")
    run.preprocess()
    step = run.train()
    report = run.evaluate()
    metadata = json.loads((run.jobs / "model/training.json").read_text())
    rmse = report["regression_metrics"]["rmse"]["value"]
    linear = linear_baseline_rmse(run.jobs)
    result = {
        "job_seconds": round(step.seconds, 3),
        "boosting_seconds": metadata["training_seconds"],
        "rounds": metadata["rounds"],
        "test_rmse": rmse,
        "test_rmse_sd": report["regression_metrics"]["rmse"]["standard_deviation"],
        "linear_regression_test_rmse": linear,
        "rmse_target": RMSE_TARGET,
        "rmse_target_met": rmse <= RMSE_TARGET,
    }
    say(f"  train job {step.seconds:.2f} s (boosting {metadata['training_seconds']:.2f} s, "
        f"{metadata['rounds']} rounds)")
    say(f"  test RMSE {rmse:.4f} rings (bootstrap sd {result['test_rmse_sd']:.4f}); linear "
        f"regression {linear:.4f}; target <= {RMSE_TARGET}: "
        f"{'met' if rmse <= RMSE_TARGET else 'NOT met'}")
    return result


def median_us(function: Any, *, seconds: float = 1.0, minimum: int = 5) -> float:
    function()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < minimum:
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def in_process(model_dir: Path, bodies: dict[int, bytes], say: Any) -> dict[str, dict[str, float]]:
    """Median times, one thread: the whole handler, our predictor, XGBoost alone."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer.inference import InvocationHandler, parse_body
    from mlcontainer.model import Predictor

    predictor = Predictor.from_dir(model_dir, nthread=1)
    handler = InvocationHandler(predictor)
    results = {}
    say("\n[model] in-process, one thread (median):")
    for rows, body in bodies.items():
        parsed = parse_body(body, "text/csv")
        features = predictor.spec.encode(parsed)
        timing = results[str(rows)] = {
            "handler_us": median_us(lambda body=body: handler(body, "text/csv", None)),
            "encode_predict_us": median_us(lambda parsed=parsed: predictor.predict(parsed)),
            "xgboost_inplace_predict_us": median_us(
                lambda features=features: predictor.booster.inplace_predict(
                    features, validate_features=False)),
        }
        say(f"  {rows:>5} row(s): handler {timing['handler_us'] / 1e3:8.3f} ms  "
            f"our predictor (encode+predict) {timing['encode_predict_us'] / 1e3:8.3f} ms  "
            f"xgboost inplace_predict {timing['xgboost_inplace_predict_us'] / 1e3:8.3f} ms")
    return results
