"""``make drift``: what monitoring makes of drifted traffic, on this machine.

Trains and serves the model as ``make local`` does, then sends a drifted copy of the test
set to the server, as if the measuring instruments had drifted: lengths and diameters read
15 % short, weights at 35 %, a third of the infants recorded as males; heights untouched.
Every request is captured in SageMaker's data-capture format. The ``monitor`` job checks the window with the project config's
settings and this prints which features drifted, by how much, and whether the drift alarm
would fire. Then it uploads the matching ground truth (the test rows' real ring counts, in
Model Monitor's ground-truth format, joined by inference id), runs the monitor again and
prints the model-quality metrics and whether the quality alarm would fire. The HTML report
stays in the work directory (printed at the end).

Usage: ``python scripts/drift.py [-c mlops.yaml] [--workdir DIR] [-H num_round=50 ...]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import local

#: Multipliers of the drifted copy, per column; and the share of infants turned into males.
SCALE = {"length": 0.85, "diameter": 0.85, "whole_weight": 0.35, "shucked_weight": 0.35,
         "viscera_weight": 0.35, "shell_weight": 0.35}
INFANTS_AS_MALES = 3  # every third infant
COLUMNS = ("sex", "length", "diameter", "height", "whole_weight", "shucked_weight",
           "viscera_weight", "shell_weight")


def drifted(row: str, index: int) -> str:
    """One feature row of the drifted copy (deterministic)."""
    fields = row.split(",")
    for position, name in enumerate(COLUMNS):
        if name in SCALE:
            fields[position] = f"{float(fields[position]) * SCALE[name]:.4f}"
    if fields[0] == "I" and index % INFANTS_AS_MALES == 0:
        fields[0] = "M"
    return ",".join(fields)


def alarm_line(name: str, alarm: dict[str, Any], periods: tuple[int, int], period: str) -> str:
    """What the alarm would make of runs like this one (its datapoints out of periods)."""
    datapoints, evaluation = periods
    if not alarm["breaching"]:
        return f"  {name:<14} {alarm['rule']}: not breaching"
    when = "on this run" if datapoints == 1 else f"after {datapoints} of {evaluation} {period} runs like this one"
    return f"  {name:<14} {alarm['rule']}: breaching, fires {when}"


def print_features(report: dict[str, Any]) -> None:
    print(f"  {'feature':<16} {'distance':>8}  drifted")
    for name, feature in [*report["features"].items(), ("prediction", report["prediction"])]:
        distance = feature["distance"]
        shown = "       -" if distance is None else f"{distance:8.3f}"
        flag = "yes" if feature["drifted"] else "no"
        watched = "" if feature.get("watched", False) else "  (not counted by the alarm)"
        print(f"  {name:<16} {shown}  {flag}{watched}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=local.REPO / "mlops.yaml")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the run's files stay (default: a new temporary directory)")
    parser.add_argument("-H", "--hyperparameter", type=local._hyperparameter, action="append",
                        default=[], metavar="NAME=VALUE", help="override a hyperparameter")
    return parser


def _train_and_serve(run: local.Lifecycle) -> local.Server:
    for step in (run.preprocess, run.train):
        step()
    run.evaluate()
    server = run.serve()
    server.wait_ready()
    return server


def main(argv: list[str] | None = None) -> int:
    """Long because it is the demonstration, step after step, each printing what it found."""
    args = _parser().parse_args(argv)
    from mlops_templates import config as config_mod
    from mlops_templates.errors import ConfigError
    from mlops_templates.stacks.deploy_prd.alarms import SCHEDULES

    try:
        config = config_mod.load(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    hyperparameters = {k: str(v) for k, v in config.training.hyperparameters.items()}
    hyperparameters.update(dict(args.hyperparameter))
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="mlops-drift-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for leftover in ("capture", "ground-truth", "monitoring"):  # a work directory used before
        shutil.rmtree(root / leftover, ignore_errors=True)
    run = local.Lifecycle(root=root, hyperparameters=hyperparameters)
    print(f"drift demonstration under {root}")
    schedule = SCHEDULES[config.monitoring.schedule_expression]
    period = {3600: "hourly", 21600: "6-hourly", 86400: "daily"}[schedule.period]
    try:
        server = _train_and_serve(run)
    except local.StepFailed as err:
        print(f"\n{err.step.name} failed:\n{err.step.output}", file=sys.stderr)
        return 1
    try:
        started = datetime.now(UTC) - timedelta(seconds=1)
        requests, labels = local.labelled_test_requests(run)
        requests = [(drifted(body, i), key) for i, (body, key) in enumerate(requests)]
        clock = time.perf_counter()
        local.capture_requests(server, requests, root / "capture")
        print(f"  {'send':<14} {time.perf_counter() - clock:5.2f} s  {len(requests)} drifted test rows "
              "(length, diameter x0.85; weights x0.35; every third infant as a male)")
    finally:
        server.stop()
    window = (started.isoformat(), (datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    step, report = local.run_monitor(run, config, window)
    print(f"  {'monitor':<14} {step.seconds:5.2f} s  {local.report_summary(report)}")
    print_features(report)
    drift_periods = (schedule.datapoints, schedule.evaluation_periods)
    print(alarm_line("drift alarm", report["alarms"]["drift"], drift_periods, period))
    print(alarm_line("quality alarm", report["alarms"]["quality"], (1, 1), period)
          + ("" if report["model_quality"]["judged"] else " (no ground truth yet)"))
    uploaded = local.upload_ground_truth(root / "ground-truth", labels)
    print(f"  {'ground truth':<14} {len(labels)} labels uploaded to {uploaded} (joined by inference id)")
    window = (window[0], (datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    step, report = local.run_monitor(run, config, window)
    quality = report["model_quality"]
    metrics = "  ".join(f"{m}={quality[m]:.4f}" for m in ("rmse", "mae", "r2") if m in quality)
    print(f"  {'monitor':<14} {step.seconds:5.2f} s  {quality['rows']} labelled rows: {metrics}")
    print(alarm_line("quality alarm", report["alarms"]["quality"], (1, 1), period))
    print(f"  {'report':<14} {root / 'monitoring' / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
