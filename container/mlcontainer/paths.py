"""Where SageMaker puts things, with one switch to move them all.

SageMaker mounts everything under ``/opt/ml``. ``ML_PREFIX`` replaces that root, so the
very same code runs under a temporary directory on a laptop or in tests. Where the
SageMaker training toolkit sets ``SM_*`` variables they win over the derived paths.

Stdlib only: the server's master process imports this before it forks its workers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_PREFIX = "/opt/ml"
PREFIX_ENV = "ML_PREFIX"


def prefix() -> Path:
    """The ``/opt/ml`` root, or ``$ML_PREFIX`` when set."""
    return Path(os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX)


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


# --- training job -----------------------------------------------------------------------

def hyperparameters_file() -> Path:
    return prefix() / "input" / "config" / "hyperparameters.json"


def channel_dir(name: str) -> Path:
    """``SM_CHANNEL_<NAME>`` or ``<prefix>/input/data/<name>``."""
    return _env_path(f"SM_CHANNEL_{name.upper()}", prefix() / "input" / "data" / name)


def model_dir() -> Path:
    """Where training writes the model and where hosting finds it unpacked."""
    return _env_path("SM_MODEL_DIR", prefix() / "model")


def output_dir() -> Path:
    return prefix() / "output"


def output_data_dir() -> Path:
    """Extra training outputs (SageMaker uploads them as ``output.tar.gz``)."""
    return _env_path("SM_OUTPUT_DATA_DIR", output_dir() / "data")


def failure_file() -> Path:
    """Training: SageMaker shows this file's text as the job's FailureReason."""
    return output_dir() / "failure"


def message_file() -> Path:
    """Processing: SageMaker shows the first 1 KB of this file as the job's ExitMessage."""
    return output_dir() / "message"


def read_hyperparameters() -> dict[str, str]:
    """The job's hyperparameters; SageMaker passes every value as a string."""
    path = hyperparameters_file()
    if not path.exists():
        return {}
    from mlcontainer.errors import UserError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a JSON object of hyperparameters ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return {str(key): value if isinstance(value, str) else json.dumps(value)
            for key, value in data.items()}


# --- processing jobs ----------------------------------------------------------------------

def processing_dir() -> Path:
    return prefix() / "processing"


def raw_input_dir() -> Path:
    return processing_dir() / "input" / "raw"


def processing_output_dir() -> Path:
    return processing_dir() / "output"


def evaluation_model_file() -> Path:
    return processing_dir() / "model" / "model.tar.gz"


def evaluation_test_dir() -> Path:
    return processing_dir() / "test"


def evaluation_output_dir() -> Path:
    return processing_dir() / "evaluation"


def feature_baseline_dir() -> Path:
    """Evaluate: the train split's feature profile written by preprocess."""
    return processing_dir() / "feature_baseline"


def monitoring_baseline_dir() -> Path:
    """Evaluate writes the monitoring baseline here; the monitor job reads it here."""
    return processing_dir() / "baseline"


# --- the monitor job (processing) ----------------------------------------------------------

def capture_dir() -> Path:
    """The endpoint's captured requests of the window (a manifest input)."""
    return processing_dir() / "input" / "capture"


def ground_truth_dir() -> Path:
    """Ground-truth labels uploaded in the window (a manifest input)."""
    return processing_dir() / "input" / "ground_truth"


def monitor_output_dir() -> Path:
    """``report.json``, ``report.html`` and ``metrics.json``."""
    return processing_dir() / "monitoring"
