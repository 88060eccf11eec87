"""``train``: fit XGBoost on the ``train`` channel, early-stopping on ``validation``.

SageMaker training contract: hyperparameters from
``/opt/ml/input/config/hyperparameters.json`` (every value a string), channels under
``/opt/ml/input/data/<channel>`` (or ``SM_CHANNEL_<CHANNEL>``), the model to
``/opt/ml/model`` (or ``SM_MODEL_DIR``), extra outputs to ``SM_OUTPUT_DATA_DIR``. On
error the reason goes to ``/opt/ml/output/failure`` and the exit status is 1.

Each round prints ``[n] train-rmse=<f>; validation-rmse=<f>;`` for the job's
MetricDefinitions; the last such line holds the kept (best) round's values. On a GPU
instance (``SM_NUM_GPUS`` > 0, or ``nvidia-smi`` lists a GPU) with a CUDA build of
XGBoost, training runs with ``device=cuda``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from mlcontainer import paths, privileges
from mlcontainer.errors import UserError
from mlcontainer.jobs import log, run_job


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter's rule, as data: its type, an interval (bounds inclusive unless
    ``*_open``), a set of choices or a pattern. ``rules()`` exports it for the library's
    config-time check of tuning ranges (``mlops_templates/data/container_hyperparameters.json``)."""

    kind: type
    rule: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    minimum_open: bool = False
    maximum_open: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None

    def check(self, value: Any) -> bool:
        if self.choices and value not in self.choices:
            return False
        if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
            return False
        if self.minimum is not None and (value <= self.minimum if self.minimum_open
                                         else value < self.minimum):
            return False
        return self.maximum is None or not (value >= self.maximum if self.maximum_open
                                            else value > self.maximum)


def _int(rule: str, default: Any = None, **bounds: Any) -> Hyperparameter:
    return Hyperparameter(int, rule, default, **bounds)


def _float(rule: str, default: Any = None, **bounds: Any) -> Hyperparameter:
    return Hyperparameter(float, rule, default, **bounds)


def _choice(default: str, *values: str) -> Hyperparameter:
    return Hyperparameter(str, "one of " + ", ".join(values), default, choices=values)


#: Defaults chosen by 5-fold cross-validation on the train + validation rows of the seeded
#: split (see container/README.md); the test split was not used to choose them.
HYPERPARAMETERS: dict[str, Hyperparameter] = {
    "num_round": _int("an integer in [1, 100000]", 500, minimum=1, maximum=100_000),
    "early_stopping_rounds": _int("an integer >= 0 (0 turns early stopping off)", 20, minimum=0),
    "max_depth": _int("an integer in [0, 32]", 3, minimum=0, maximum=32),
    "eta": _float("a number in (0, 1]", 0.05, minimum=0, minimum_open=True, maximum=1),
    "subsample": _float("a number in (0, 1]", 0.8, minimum=0, minimum_open=True, maximum=1),
    "colsample_bytree": _float("a number in (0, 1]", 1.0, minimum=0, minimum_open=True,
                               maximum=1),
    "min_child_weight": _float("a number >= 0", 10.0, minimum=0),
    "gamma": _float("a number >= 0", minimum=0),
    "lambda": _float("a number >= 0", minimum=0),
    "alpha": _float("a number >= 0", minimum=0),
    "max_bin": _int("an integer in [2, 4096]", minimum=2, maximum=4096),
    "seed": _int("an integer in [0, 2^31)", 0, minimum=0, maximum=2**31, maximum_open=True),
    "objective": _choice("reg:squarederror", "reg:squarederror", "reg:pseudohubererror",
                         "reg:absoluteerror", "reg:gamma", "reg:tweedie", "count:poisson"),
    "tree_method": _choice("hist", "hist", "approx", "exact"),
    "device": Hyperparameter(str, "cpu, cuda or cuda:<ordinal> (default: cuda when a GPU is "
                             "present)", pattern=r"cpu|cuda(:\d+)?"),
    "nthread": _int("an integer >= 1", minimum=1),
}

#: ``rules()``'s name for each Python type.
KINDS = {int: "integer", float: "continuous", str: "categorical"}


def rules() -> dict[str, dict[str, Any]]:
    """Every hyperparameter's rule as JSON-ready data (what the library checks tuning
    ranges against)."""
    out = {}
    for name, spec in sorted(HYPERPARAMETERS.items()):
        out[name] = {"type": KINDS[spec.kind], "rule": spec.rule, "default": spec.default,
                     "minimum": spec.minimum, "maximum": spec.maximum,
                     "minimum_open": spec.minimum_open, "maximum_open": spec.maximum_open,
                     "choices": list(spec.choices), "pattern": spec.pattern}
    return out


def parse_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """Typed, validated hyperparameters with defaults filled in.

    Keys starting with ``sagemaker_`` or ``_`` (set by SageMaker tooling and tuning jobs)
    are ignored; any other unknown key is an error, since a typo would silently train
    with a default.
    """
    values = {name: spec.default for name, spec in HYPERPARAMETERS.items()
              if spec.default is not None}
    for name, text in raw.items():
        if name.startswith(("sagemaker_", "_")):
            continue
        spec = HYPERPARAMETERS.get(name)
        if spec is None:
            raise UserError(f"unknown hyperparameter '{name}' (known: "
                            f"{', '.join(sorted(HYPERPARAMETERS))})")
        text = str(text).strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]  # the SageMaker Python SDK JSON-encodes string values
        try:
            if spec.kind is int:
                number = float(text)
                if not number.is_integer():
                    raise ValueError(text)
                value: Any = int(number)
            else:
                value = spec.kind(text)
        except (ValueError, OverflowError):
            raise UserError(f"hyperparameter '{name}': {text!r} is not {spec.rule}") from None
        if not spec.check(value):
            raise UserError(f"hyperparameter '{name}': {text!r} is not {spec.rule}")
        values[name] = value
    return values


def gpu_count() -> int:
    """GPUs visible to this job: ``SM_NUM_GPUS`` where SageMaker sets it, else ``nvidia-smi``."""
    value = os.environ.get("SM_NUM_GPUS")
    if value is not None and value.strip():
        try:
            return max(0, int(value))
        except ValueError:
            log(f"ignoring SM_NUM_GPUS={value!r}: not an integer")
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listing.returncode != 0:
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def choose_device(hyperparameters: dict[str, Any]) -> str:
    import xgboost as xgb

    cuda_build = bool(xgb.build_info().get("USE_CUDA"))
    requested = hyperparameters.get("device")
    if requested:
        if requested.startswith("cuda") and not cuda_build:
            raise UserError(f"hyperparameter 'device': {requested!r} needs a CUDA build of "
                            "XGBoost; this image has the CPU-only build (build the image "
                            "with --build-arg XGBOOST_VARIANT=cuda)")
        return requested
    gpus = gpu_count()
    if gpus and cuda_build:
        return "cuda"
    if gpus:
        log(f"{gpus} GPU(s) present but this image's XGBoost is the CPU-only build; training "
            "on the CPU (build the image with --build-arg XGBOOST_VARIANT=cuda to use them)")
    return "cpu"


def read_channel(name: str, *, required: bool):
    """All ``*.csv`` rows of a channel, validated (raw columns, ``rings`` last)."""
    import numpy as np

    from mlcontainer.schema import Rows, parse_csv

    directory = paths.channel_dir(name)
    files = sorted(p for p in directory.rglob("*") if p.is_file()
                   and not p.name.startswith(".")) if directory.is_dir() else []
    if not files:
        if required:
            raise UserError(f"channel '{name}' has no data: {directory} is missing or empty")
        return None
    parts = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise UserError(f"channel '{name}', {path.name}: not UTF-8 text "
                            f"({err.reason} at byte {err.start})") from None
        parts.append(parse_csv(text, where=f"channel '{name}', {path.name}", label="required"))
    if len(parts) == 1:
        return parts[0]
    return Rows(sex=np.concatenate([p.sex for p in parts]),
                numeric=np.concatenate([p.numeric for p in parts]),
                label=np.concatenate([p.label for p in parts]))


def run() -> None:
    import numpy as np
    import xgboost as xgb

    from mlcontainer.model import METADATA_FILE, MODEL_FILE, SPEC_FILE, cpu_count
    from mlcontainer.schema import FeatureSpec

    hyperparameters = parse_hyperparameters(paths.read_hyperparameters())
    log("hyperparameters: " + json.dumps(hyperparameters, sort_keys=True))
    train = read_channel("train", required=True)
    validation = read_channel("validation", required=False)
    spec = FeatureSpec()
    device = choose_device(hyperparameters)
    log(f"xgboost {xgb.__version__}, device {device}, {len(train)} training rows, "
        f"{len(validation) if validation is not None else 0} validation rows")

    names = spec.feature_names
    dtrain = xgb.DMatrix(spec.encode(train), label=train.label, feature_names=names)
    evals = [(dtrain, "train")]
    if validation is not None:
        evals.append((xgb.DMatrix(spec.encode(validation), label=validation.label,
                                  feature_names=names), "validation"))
    early_stopping = hyperparameters["early_stopping_rounds"] if validation is not None else 0
    if validation is None:
        log("no validation channel: training all rounds without early stopping")

    params = {key: value for key, value in hyperparameters.items()
              if key not in ("num_round", "early_stopping_rounds", "device")}
    params.update(device=device, eval_metric="rmse", nthread=hyperparameters.get("nthread",
                                                                                cpu_count()))
    history: dict[str, dict[str, list[float]]] = {}

    class PrintMetrics(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            log(f"[{epoch}] " + " ".join(f"{data}-rmse={metrics['rmse'][-1]:.6f};"
                                         for data, metrics in evals_log.items()))
            return False

    started = time.perf_counter()
    booster = xgb.train(params, dtrain, num_boost_round=hyperparameters["num_round"],
                        evals=evals, early_stopping_rounds=early_stopping or None,
                        evals_result=history, callbacks=[PrintMetrics()], verbose_eval=False)
    seconds = time.perf_counter() - started
    best = booster.best_iteration if early_stopping else booster.num_boosted_rounds() - 1
    booster = booster[: best + 1]
    final = {f"{data}-rmse": metrics["rmse"][best] for data, metrics in history.items()}
    # The last matching line is the value SageMaker keeps for each metric.
    log(f"kept {best + 1} of {len(history['train']['rmse'])} rounds: "
        + " ".join(f"{key}={value:.6f};" for key, value in final.items()))

    # Hosting may run without a GPU: the saved model must not ask for one.
    booster.set_param({"device": "cpu"})
    model_dir = paths.model_dir()
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE))
    (model_dir / SPEC_FILE).write_text(spec.dumps(), encoding="utf-8")
    metadata = {
        "hyperparameters": hyperparameters,
        "device": device,
        "xgboost_version": xgb.__version__,
        "numpy_version": np.__version__,
        "rounds": best + 1,
        "training_seconds": round(seconds, 3),
        "rows": {"train": len(train), "validation": len(validation) if validation else 0},
        "metrics": final,
    }
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n",
                                           encoding="utf-8")
    data_dir = paths.output_data_dir()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "training_history.json").write_text(json.dumps(history) + "\n",
                                                    encoding="utf-8")
    log(f"model saved to {model_dir} ({seconds:.2f} s of boosting)")


def main(argv: list[str]) -> int:
    if argv:
        # SageMaker passes no arguments to `train`; anything else is a mistake.
        print(f"train takes no arguments (got {' '.join(argv)}); configure it with "
              "hyperparameters.json", flush=True)
    privileges.drop_for_job(
        readable=[paths.hyperparameters_file(), paths.channel_dir("train"),
                  paths.channel_dir("validation")],
        writable=[paths.model_dir(), paths.output_dir(), paths.output_data_dir()],
    )
    return run_job("training", run, paths.failure_file())

