"""``make local TUNE=1``: a small hyperparameter search on this machine over the ranges of
``training.tuning``, before the rest of the local lifecycle.

Random search with a fixed seed (SageMaker's ``Random`` strategy; a handful of trials, not
the tuning job's ``max_jobs``): each trial is a real ``train`` run of the container with the
fixed hyperparameters plus the trial's values, its objective read from the training log
with the tuning job's own metric definition (the last ``validation-rmse=`` the job prints).
The best trial's model is the one the lifecycle then evaluates, gates and serves. Scaling:
``Logarithmic`` and ``ReverseLogarithmic`` sample as SageMaker describes them, ``Auto`` and
``Linear`` uniformly.
"""

from __future__ import annotations

import math
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Trial:
    number: int
    values: dict[str, str]
    objective: float


def sample(spec: Any, rng: random.Random) -> str:
    """One value of the range ``spec`` (a ``config.ParameterRange``), as SageMaker passes it:
    a string."""
    if spec.type == "categorical":
        return str(rng.choice(spec.values))
    low, high = float(spec.min), float(spec.max)
    if spec.scaling == "Logarithmic":
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    elif spec.scaling == "ReverseLogarithmic":
        value = 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
    else:
        value = rng.uniform(low, high)
    if spec.type == "integer":
        return str(min(int(high), max(int(low), round(value))))
    return f"{min(high, max(low, value)):.6g}"


def objective(output: str, metric: str) -> float:
    """The objective metric's value in a training log: the last match of its regex."""
    from mlops_templates.tuning import METRIC_DEFINITIONS

    (regex,) = [m["Regex"] for m in METRIC_DEFINITIONS if m["Name"] == metric]
    found = re.findall(regex, output)
    if not found:
        raise ValueError(f"the training log has no {metric} ({regex})")
    return float(found[-1])


def search(run: Any, tuning: Any, fixed: dict[str, str], trials: int, seed: int,
           say: Callable[[str], None] = print) -> Trial:
    """Run ``trials`` training runs of ``run`` (a ``local.Lifecycle``) over ``tuning``'s
    ranges; leave the best trial's model as the run's model and return the best trial."""
    rng = random.Random(seed)
    done: list[Trial] = []
    keep = run.root / "trials"
    for number in range(1, trials + 1):
        values = {name: sample(spec, rng) for name, spec in tuning.ranges.items()}
        run.hyperparameters = {**fixed, **values}
        step = run.train()
        trial = Trial(number, values, objective(step.output, tuning.objective_metric))
        done.append(trial)
        (keep / str(number)).mkdir(parents=True, exist_ok=True)
        shutil.copy(run.model_tarball, keep / str(number) / "model.tar.gz")
        shown = " ".join(f"{k}={v}" for k, v in values.items())
        say(f"  trial {number:<5} {step.seconds:6.2f} s  {shown} -> {tuning.objective_metric}="
            f"{trial.objective:.4f}")
    best = min(done, key=lambda t: t.objective)
    shutil.copy(keep / str(best.number) / "model.tar.gz", run.model_tarball)
    run.hyperparameters = {**fixed, **best.values}
    say(f"  best        trial {best.number}: "
        + " ".join(f"{k}={v}" for k, v in best.values.items())
        + f" ({tuning.objective_metric}={best.objective:.4f})")
    return best
