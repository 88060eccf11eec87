"""``make local TUNE=1``: the seeded random search over ``training.tuning``'s ranges, each
trial a real ``train`` run, the best trial's model going on through the lifecycle."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

from mlops_templates import config, tuning

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import local_tuning

from .test_container_lifecycle import local

CONFIG = """\
training:
  hyperparameters: {num_round: 8, early_stopping_rounds: 0}
  tuning:
    enabled: true
    ranges:
      max_depth: {type: integer, min: 2, max: 6, scaling: Logarithmic}
      eta: {type: continuous, min: 0.05, max: 0.5, scaling: Logarithmic}
      subsample: {type: continuous, min: 0.5, max: 0.9, scaling: ReverseLogarithmic}
      tree_method: {type: categorical, values: [hist, approx]}
"""


def test_samples_stay_in_their_ranges_and_the_container_accepts_them() -> None:
    cfg = config.parse({"training": {"tuning": {"enabled": True, "ranges": {
        "max_depth": {"type": "integer", "min": 2, "max": 6, "scaling": "Logarithmic"},
        "subsample": {"type": "continuous", "min": 0.5, "max": 0.9, "scaling": "ReverseLogarithmic"},
        "objective": {"type": "categorical", "values": ["reg:squarederror", "reg:gamma"]},
    }}}})
    rng = random.Random(0)
    rules = tuning.rules()
    for _ in range(200):
        for name, spec in cfg.training.tuning.ranges.items():
            value = local_tuning.sample(spec, rng)
            assert rules[name].accepts(value), (name, value)
            if spec.type != "categorical":
                assert spec.min <= float(value) <= spec.max, (name, value)


def test_the_objective_is_the_last_value_the_job_prints() -> None:
    log = "[0] train-rmse=3.1; validation-rmse=3.3;\n[1] train-rmse=2.0; validation-rmse=2.5;\n"
    assert local_tuning.objective(log + "kept 1 of 2 rounds: validation-rmse=2.4;", "validation:rmse") == 2.4
    with pytest.raises(ValueError, match="validation:rmse"):
        local_tuning.objective("no metrics", "validation:rmse")


@pytest.mark.slow
def test_make_local_tune_searches_then_serves_the_best_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mlops.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    code = local.main(["-c", str(path), "--tune", "--trials", "3", "--workdir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0, out
    trials = re.findall(r"trial (\d) .* -> validation:rmse=([0-9.]+)", out)
    assert [n for n, _ in trials] == ["1", "2", "3"]
    best = min(trials, key=lambda t: float(t[1]))
    assert re.search(rf"best +trial {best[0]}: .*\(validation:rmse={best[1]}\)", out)
    # The lifecycle went on with the best trial's model.
    kept = (tmp_path / "run" / "trials" / best[0] / "model.tar.gz").read_bytes()
    assert (tmp_path / "run" / "jobs" / "processing" / "model" / "model.tar.gz").read_bytes() == kept
    assert "gate" in out and "smoke" in out
    # Same seed, same search.
    again = local.main(["-c", str(path), "--tune", "--trials", "3", "--workdir", str(tmp_path / "again")])
    assert again == 0
    assert re.findall(r"trial (\d) .* -> validation:rmse=([0-9.]+)", capsys.readouterr().out) == trials
