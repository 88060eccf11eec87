"""Model artifacts: what training writes, what evaluation and hosting read.

Our model directory (packed by SageMaker into ``model.tar.gz``)::

    model.ubj            the XGBoost booster (UBJSON), trimmed to its best iteration
    preprocessing.json   the FeatureSpec: how raw rows become features
    training.json        metadata: hyperparameters, metrics, versions, device

A directory holding ``xgboost-model`` (the SageMaker built-in XGBoost algorithm's
artifact, trained on the encoded copies that preprocess writes) is read too, with the
default FeatureSpec those copies were encoded with, so it is served, like our own
models, from raw rows. The built-in algorithm saves with ``Booster.save_model``: version
1.7-1 in XGBoost's legacy binary format, which this container's XGBoost no longer reads
(:mod:`mlcontainer.legacy` converts it), 3.0-5 and later in UBJSON.

Module-level imports are stdlib only: the server's master process reads the files with
:func:`read_model_files` before forking, and only the workers import NumPy and XGBoost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mlcontainer import legacy
from mlcontainer.errors import UserError

MODEL_FILE = "model.ubj"
SPEC_FILE = "preprocessing.json"
METADATA_FILE = "training.json"
BUILTIN_MODEL_FILE = "xgboost-model"


@dataclass(frozen=True)
class ModelFiles:
    """The raw bytes of a model artifact; ``spec`` is ``None`` for a built-in model."""

    booster: bytes
    spec: str | None
    kind: str  # "custom" or "builtin"
    source: Path


def read_model_files(model_dir: Path) -> ModelFiles:
    """Read a model directory, raising :class:`UserError` with what is missing."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model directory {model_dir} does not exist")
    ours = model_dir / MODEL_FILE
    builtin = model_dir / BUILTIN_MODEL_FILE
    try:
        if ours.is_file():
            spec_path = model_dir / SPEC_FILE
            if not spec_path.is_file():
                raise UserError(f"{model_dir} has {MODEL_FILE} but no {SPEC_FILE}: the "
                                "preprocessing must travel with the model")
            return ModelFiles(ours.read_bytes(), spec_path.read_text(encoding="utf-8"),
                              "custom", ours)
        if builtin.is_file():
            return ModelFiles(builtin.read_bytes(), None, "builtin", builtin)
    except OSError as err:
        raise UserError(f"cannot read the model in {model_dir}: {err}") from None
    found = sorted(p.name for p in model_dir.iterdir())[:20]
    raise UserError(f"no model in {model_dir}: expected {MODEL_FILE} + {SPEC_FILE} (this "
                    f"container's training) or {BUILTIN_MODEL_FILE} (built-in XGBoost); "
                    f"found {found or 'nothing'}")


class Predictor:
    """A loaded booster plus the FeatureSpec that encodes raw rows for it."""

    def __init__(self, booster, spec, kind: str = "custom") -> None:
        from mlcontainer.forest import SMALL_BATCH, Forest

        self.booster = booster
        self.spec = spec
        self.kind = kind
        n_features = booster.num_features()
        if n_features != len(spec.feature_names):
            raise UserError(f"the model expects {n_features} features but its preprocessing "
                            f"produces {len(spec.feature_names)} ({', '.join(spec.feature_names)})")
        self.forest = Forest.build(booster, n_features)
        self.small_batch = SMALL_BATCH if self.forest is not None else 0

    @classmethod
    def from_files(cls, files: ModelFiles, *, nthread: int | None = None) -> Predictor:
        import xgboost as xgb

        from mlcontainer.schema import FeatureSpec

        if files.booster[:1] == b"\x80":
            # The built-in container tries pickle first; a server never unpickles a file.
            raise UserError(f"{files.source} is a pickled booster (built-in XGBoost before "
                            "1.3-1); retrain with version 1.3-1 or later, which saves the "
                            "XGBoost model format")
        raw = files.booster
        if legacy.is_legacy(raw):
            try:
                raw = json.dumps(legacy.to_json(raw)).encode()
            except UserError as err:
                raise UserError(f"{files.source}: {err}") from None
        booster = xgb.Booster()
        try:
            # From a buffer XGBoost detects the format itself (UBJSON or JSON).
            booster.load_model(bytearray(raw))
        except xgb.core.XGBoostError as err:
            raise UserError(f"{files.source} is not an XGBoost model: "
                            f"{str(err).splitlines()[0]}") from None
        best = booster.attr("best_iteration")
        if best is not None and int(best) + 1 < booster.num_boosted_rounds():
            # A built-in model keeps the trees after its best round; predict with the best.
            booster = booster[: int(best) + 1]
        if nthread is not None:
            booster.set_param({"nthread": nthread})
        spec = (FeatureSpec.loads(files.spec, where=str(files.source.parent / SPEC_FILE))
                if files.spec is not None else FeatureSpec())
        return cls(booster, spec, files.kind)

    @classmethod
    def from_dir(cls, model_dir: Path, *, nthread: int | None = None) -> Predictor:
        return cls.from_files(read_model_files(model_dir), nthread=nthread)

    def predict(self, rows):
        """Predicted rings (float32 array) for validated :class:`~mlcontainer.schema.Rows`."""
        features = self.spec.encode(rows)
        if len(features) <= self.small_batch:
            return self.forest.predict(features)
        return self.booster.inplace_predict(features, validate_features=False)


def cpu_count() -> int:
    """CPUs this process may use (affinity and cgroup quota), at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)
