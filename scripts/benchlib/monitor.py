"""The monitor section: how fast ``mlcontainer monitor`` checks an hour of a busy endpoint.

100,000 capture records (the test split's rows cycled, with the model's answers, one hour
of inference times; every 50th record synthetic and left out; ground truth for a tenth,
in files of their own) are written in SageMaker's data-capture format, then the monitor
job runs over them as the processing job would: one process, pinned to one core (the
target is 100,000 records in under 10 s on one core), with the production job's settings.
The whole job is timed, start-up and the three reports included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchlib.stacks import local

RECORDS = 100_000
TARGET_SECONDS = 10.0
SYNTHETIC_EVERY = 50
LABELLED_EVERY = 10
START = datetime(2024, 5, 1, 10, tzinfo=UTC)


def write_traffic(run: Any, root: Path, records: int = RECORDS) -> tuple[Path, Path]:
    """Capture and ground-truth files of ``records`` requests under ``root``."""
    capture = local._capture_module()
    lines = (run.jobs / "processing" / "output" / "test" / "test.csv").read_text().splitlines()[1:]
    rows = [line.rpartition(",") for line in lines]
    step = timedelta(seconds=3600 / records)
    captured, labels = [], []
    for index in range(records):
        features, _, rings = rows[index % len(rows)]
        key = f"{'synthetic-' if index % SYNTHETIC_EVERY == 0 else ''}bench-{index}"
        answer = f"{float(rings) * 0.9 + 1:.7g}\n"
        captured.append(json.dumps(capture.capture_record(features, answer, START + index * step,
                                                          f"event-{index}", key)) + "\n")
        if index % LABELLED_EVERY == 0:
            labels.append(json.dumps(capture.ground_truth_record([float(rings)], key)) + "\n")
    capture_dir, truth_dir = root / "capture", root / "ground-truth"
    # Data capture writes a file every few minutes per instance: 12 files for the hour.
    per_file = -(-records // 12)
    for part in range(0, records, per_file):
        path = capture.capture_path(capture_dir, "bench", START, f"part-{part // per_file:02d}.jsonl")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(captured[part:part + per_file]), encoding="utf-8")
    path = capture.hour_path(truth_dir, START + timedelta(hours=1), "labels.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(labels), encoding="utf-8")
    return capture_dir, truth_dir


def _one_core() -> list[str]:
    """A command prefix that pins the job to one CPU (``taskset``), when there is one."""
    try:
        cpu = min(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []
    return ["taskset", "-c", str(cpu)] if subprocess.run(
        ["which", "taskset"], capture_output=True, check=False).returncode == 0 else []


def throughput(run: Any, say: Any, records: int = RECORDS) -> dict[str, Any]:
    """Time the monitor job over ``records`` captured records (``run``: a
    :class:`local.Lifecycle` whose evaluate step wrote the baseline)."""
    sys.path.insert(0, str(local.REPO))
    from mlops_templates import config as config_mod
    from mlops_templates.stacks.deploy_prd.monitor_definition import job_environment

    cfg = config_mod.load(local.REPO / "mlops.yaml")
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as scratch:
        root = Path(scratch)
        say(f"[monitor] writing {records:,} capture records")
        capture_dir, truth_dir = write_traffic(run, root, records)
        env = local.container_env(run.jobs, {
            **job_environment(cfg, "bench"), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "WINDOW_START": START.isoformat(), "WINDOW_END": (START + timedelta(hours=1)).isoformat(),
        })
        command = [*_one_core(), sys.executable, "-m", "mlcontainer", "monitor",
                   "--capture", str(capture_dir), "--ground-truth", str(truth_dir),
                   "--output", str(root / "out")]
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"the monitor job failed:\n{proc.stdout}{proc.stderr}")
        report = json.loads((root / "out" / "report.json").read_text(encoding="utf-8"))
    result = {
        "records": records,
        "rows": report["records"]["rows"],
        "synthetic": report["records"]["synthetic"],
        "labelled_rows": report["model_quality"]["rows"],
        "seconds": round(seconds, 2),
        "records_per_second": round(records / seconds),
        "pinned_to_one_core": bool(_one_core()),
        "target_seconds": TARGET_SECONDS,
        "met": seconds < TARGET_SECONDS,
    }
    say(f"[monitor] {records:,} records ({result['rows']:,} live rows, {result['labelled_rows']:,} "
        f"labelled) in {seconds:.2f} s on one core: {result['records_per_second']:,} records/s "
        f"(target < {TARGET_SECONDS:g} s)")
    return result
