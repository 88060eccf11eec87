"""``preprocess``: validate the raw CSV and split it (SageMaker Processing job).

Inputs: every ``*.csv`` under ``/opt/ml/processing/input/raw`` (header optional; columns
``sex,...,shell_weight,rings``). Outputs under ``/opt/ml/processing/output``:

* ``{train,validation,test}/<split>.csv``: header, raw features, ``rings`` last; the
  rows are written back exactly as read, so every later step sees raw rows.
* ``xgboost/{train,validation}/<split>.csv``: label first, no header, features encoded
  with the default :class:`~mlcontainer.schema.FeatureSpec`, for the built-in XGBoost
  algorithm.
* ``feature_baseline/{statistics,constraints}.json``: the profile of the train split's
  features that the ``monitor`` job compares live requests with (:mod:`mlcontainer.baseline`;
  ``evaluate`` adds the prediction distribution).
* ``baseline/baseline.csv``: the baseline dataset of Model Monitor's analyzer
  (``monitoring.engine: model_monitor``): a ``prediction`` column (the train split's
  ``rings``, as a decimal number) then the raw features, under a header. Model Monitor
  analyses captured output and input together and "the prediction/output column(s) are
  assumed to be the 1st column(s) in the training dataset"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-create-baseline.html).

The split is a seeded permutation: the same file and seed always give the same split.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
from pathlib import Path

from mlcontainer import paths, privileges
from mlcontainer.errors import UserError
from mlcontainer.jobs import log, run_job

DEFAULT_SEED = 42
DEFAULT_FRACTIONS = (0.70, 0.15)  # train, validation; the rest is test
SPLITS = ("train", "validation", "test")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlcontainer preprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None,
                        help="raw CSV file or directory (default: <prefix>/processing/input/raw)")
    parser.add_argument("--output", type=Path, default=None,
                        help="output root (default: <prefix>/processing/output)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SPLIT_SEED", DEFAULT_SEED)),
                        help=f"split seed (default: $SPLIT_SEED or {DEFAULT_SEED})")
    parser.add_argument("--train-fraction", type=float, default=DEFAULT_FRACTIONS[0])
    parser.add_argument("--validation-fraction", type=float, default=DEFAULT_FRACTIONS[1])
    return parser


def _input_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"input {source} does not exist")
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise UserError(f"no *.csv file under {source}")
    return files


def split_counts(n: int, train_fraction: float, validation_fraction: float) -> tuple[int, int, int]:
    """Rows per split; each split gets at least one row."""
    if not (0 < train_fraction < 1 and 0 < validation_fraction < 1
            and train_fraction + validation_fraction < 1):
        raise UserError("fractions must be in (0, 1) and train + validation < 1, got "
                        f"train={train_fraction}, validation={validation_fraction}")
    n_train = round(n * train_fraction)
    n_validation = round(n * validation_fraction)
    counts = (n_train, n_validation, n - n_train - n_validation)
    if min(counts) < 1:
        raise UserError(f"{n} rows are too few to split into train/validation/test {counts}")
    return counts


def _write_csv(path: Path, rows: list[list[str]], header: list[str] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_baselines(output: Path, train) -> None:
    """The monitoring baselines of the train split (see the module docstring)."""
    from mlcontainer import baseline
    from mlcontainer.schema import FEATURES

    statistics, constraints = baseline.feature_baseline(train)
    baseline.write(output / "feature_baseline", statistics, constraints)
    # Decimal labels: the analyzer infers the column's type from the baseline, and the
    # captured predictions are fractional.
    rows = [[repr(float(label)), *fields[:len(FEATURES)]]
            for label, fields in zip(train.label.tolist(), train.fields)]
    _write_csv(output / "baseline" / "baseline.csv", rows, [baseline.PREDICTION, *FEATURES])


def run(source: Path, output: Path, seed: int, fractions: tuple[float, float]) -> dict[str, int]:
    import numpy as np

    from mlcontainer.schema import COLUMNS, FeatureSpec, parse_csv

    parts = []
    for path in _input_files(source):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise UserError(f"{path.name}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        parts.append(parse_csv(text, where=path.name, label="required", keep_fields=True))
        log(f"read {len(parts[-1])} rows from {path}")
    rows = parts[0]
    if len(parts) > 1:
        from mlcontainer.schema import Rows

        rows = Rows(sex=np.concatenate([p.sex for p in parts]),
                    numeric=np.concatenate([p.numeric for p in parts]),
                    label=np.concatenate([p.label for p in parts]),
                    fields=[f for p in parts for f in p.fields])

    counts = split_counts(len(rows), *fractions)
    order = np.random.default_rng(seed).permutation(len(rows))
    bounds = np.cumsum((0, *counts))
    spec = FeatureSpec()
    for i, split in enumerate(SPLITS):
        part = rows.take(order[bounds[i]:bounds[i + 1]])
        _write_csv(output / split / f"{split}.csv", part.fields, list(COLUMNS))
        if split == "train":
            _write_baselines(output, part)
        if split != "test":
            # float64 so that the text keeps the raw values' digits (0.455, not 0.455000013).
            features = spec.encode(part, dtype=np.float64)
            encoded = [[repr(label), *map(repr, row)]
                       for label, row in zip(part.label.tolist(), features.tolist())]
            _write_csv(output / "xgboost" / split / f"{split}.csv", encoded, None)
    summary = dict(zip(SPLITS, counts))
    log(f"split {len(rows)} rows with seed {seed}: "
        + ", ".join(f"{name}={count}" for name, count in summary.items()))
    log(f"encoded features for the built-in algorithm: {', '.join(spec.feature_names)}")
    return summary


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    source = args.input or paths.raw_input_dir()
    output = args.output or paths.processing_output_dir()
    privileges.drop_for_job(readable=[source], writable=[output, paths.output_dir()])
    return run_job(
        "preprocess",
        lambda: run(source, output, args.seed, (args.train_fraction, args.validation_fraction)),
        paths.message_file(), reason_limit=1024,
    )
