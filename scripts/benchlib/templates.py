"""The templates section: how long ``mlops-templates build`` takes, next to a bare
interpreter start-up and the CLI's import alone (median of several runs each)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BUILD_TARGET_S = 1.0


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("mlops-templates")
    if script.exists():
        return [str(script)]
    found = shutil.which("mlops-templates")
    return [found] if found else [
        sys.executable, "-c", "import sys; from mlops_templates.cli import main; sys.exit(main())"]


def _median_s(command: list[str], runs: int, cwd: Path) -> tuple[float | None, str]:
    """Median wall time of ``runs`` runs (after one untimed run), or None and why."""
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, lines[-1] if lines else f"exit status {proc.returncode}"
        if attempt:
            times.append(elapsed)
    return statistics.median(times), ""


def templates(config: Path, repo: Path, runs: int, say: Any) -> dict[str, Any]:
    """``python -c pass``, ``import mlops_templates.cli`` and ``build`` of every stack."""
    say(f"\n[templates] median of {runs} runs each (one untimed run first):")
    results: dict[str, Any] = {"runs": runs, "build_target_s": BUILD_TARGET_S}
    with tempfile.TemporaryDirectory(prefix="bench-templates-") as out:
        commands = {
            "python_startup": [sys.executable, "-c", "pass"],
            "import_cli": [sys.executable, "-c", "import mlops_templates.cli"],
            "build": _cli() + ["-c", str(config), "build", "--out", out],
        }
        labels = {"python_startup": "python -c pass",
                  "import_cli": 'python -c "import mlops_templates.cli"',
                  "build": f"mlops-templates -c {config.name} build --out <tmpdir>"}
        for key, command in commands.items():
            seconds, why = _median_s(command, runs, repo)
            results[f"{key}_s"] = None if seconds is None else round(seconds, 3)
            if seconds is None:
                results[f"{key}_error"] = why
                say(f"  {labels[key]:<52} failed: {why}")
                continue
            target = ""
            if key == "build":
                met = seconds < BUILD_TARGET_S
                results["build_target_met"] = met
                target = f"  (target < {BUILD_TARGET_S:g} s: {'met' if met else 'NOT met'})"
            say(f"  {labels[key]:<52} {seconds:7.3f} s{target}")
        built = sorted(p.name for p in Path(out).iterdir())
        results["files_built"] = len(built)
    return results
