"""The batch section: rows per second through the local batch transform
(``mlcontainer.transform``, the driver ``make batch`` runs) against ``mlcontainer serve``
and against the samples' nginx -> gunicorn -> Flask stack, the same driver, the same file
and the same settings for both: ``MaxPayloadInMB`` 1 (every record of a mini-batch parsed
and predicted in one request), ``MaxConcurrentTransforms`` = the worker count, the row id
filtered out and joined back (``contract.BATCH_*``). Each stack is measured in interleaved
rounds; the figure is the median of the rounds, the ratio the median of the paired rounds.

A last row drives mlcontainer with its own ``GET /execution-parameters`` (as a SageMaker
job that leaves the two fields unset does); the samples have no such route, so SageMaker
would send them one request at a time, in 6 MB requests their nginx refuses (5 MB limit).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import stacks as st

ROWS = 200_000
PAYLOAD_MB = 1


def _input(run: Any, directory: Path, rows: int) -> Path:
    lines = (run.jobs / "processing/output/test/test.csv").read_text().splitlines()[1:]
    features = [line.rpartition(",")[0] for line in lines]
    path = directory / "batch.csv"
    path.write_text("".join(f"row-{i:07d},{features[i % len(features)]}\n" for i in range(rows)))
    return path


def _once(url: str, source: Path, output: Path, settings: Any, given: set[str]) -> tuple[float, bytes]:
    from mlcontainer import transform

    started = time.perf_counter()
    [result] = transform.transform(url, [source], output, settings, given)
    seconds = time.perf_counter() - started
    return result.records / seconds, result.output.read_bytes()


def throughput(run: Any, workers: int, rounds: int, say: Any, rows: int = ROWS) -> dict[str, Any]:
    """Rows/s of each stack through the same driver; prints them side by side."""
    from mlcontainer import transform

    from mlops_templates import contract

    names = ["mlcontainer"] + ([] if st.Samples.missing() else ["samples"])
    if len(names) == 1:
        say(f"  samples skipped; it needs: {st.Samples.missing()}")
    scratch = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    running: dict[str, st.Stack] = {}
    fixed = transform.Settings(max_payload_mb=PAYLOAD_MB, max_concurrent_transforms=workers,
                               input_filter=contract.BATCH_INPUT_FILTER,
                               join_source=contract.BATCH_JOIN_SOURCE,
                               output_filter=contract.BATCH_OUTPUT_FILTER)
    given = {"max_payload_mb", "max_concurrent_transforms", "batch_strategy"}
    samples: dict[str, list[float]] = {name: [] for name in names + ["mlcontainer (its own parameters)"]}
    try:
        source = _input(run, scratch, rows)
        running["mlcontainer"] = st.start(st.Mlcontainer, run.hosting, workers)
        if "samples" in names:
            running["samples"] = st.start(st.Samples, run.hosting / "model", workers, "xgboost")
        outputs = {}
        for round_ in range(rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                url = f"http://127.0.0.1:{running[name].port}"
                rate, outputs[name] = _once(url, source, scratch / name, fixed, given)
                samples[name].append(rate)
            own = transform.replace(fixed, max_payload_mb=transform.DEFAULT_MAX_PAYLOAD_MB)
            rate, _ = _once(f"http://127.0.0.1:{running['mlcontainer'].port}", source,
                            scratch / "own", own, set())
            samples["mlcontainer (its own parameters)"].append(rate)
            say(f"  round {round_ + 1}/{rounds}: " + ", ".join(
                f"{name} {values[-1]:,.0f} rows/s" for name, values in samples.items()))
        _same_predictions(outputs)
    finally:
        for stack in running.values():
            stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return _report(samples, names, rows, workers, say)


def _same_predictions(outputs: dict[str, bytes]) -> None:
    """The stacks' outputs: the same rows, the same ids, predictions within 1e-4."""
    if len(outputs) < 2:
        return
    ours, theirs = (outputs[name].splitlines() for name in ("mlcontainer", "samples"))
    if len(ours) != len(theirs):
        raise RuntimeError(f"the outputs differ in length: {len(ours)} vs {len(theirs)}")
    for a, b in zip(ours[:1000], theirs[:1000], strict=True):
        head_a, _, value_a = a.rpartition(b",")
        head_b, _, value_b = b.rpartition(b",")
        if head_a != head_b or abs(float(value_a) - float(value_b)) > 1e-4:
            raise RuntimeError(f"the outputs disagree: {a!r} vs {b!r}")


def _report(samples: dict[str, list[float]], names: list[str], rows: int, workers: int,
            say: Any) -> dict[str, Any]:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    result: dict[str, Any] = {"rows": rows, "workers": workers, "max_payload_mb": PAYLOAD_MB,
                              "rows_per_s": medians, "rounds": samples}
    say(f"\n[batch] {rows:,} rows through the local transform, {workers} worker(s), "
        f"MaxPayloadInMB {PAYLOAD_MB}, MaxConcurrentTransforms {workers} (medians of "
        f"{len(samples['mlcontainer'])} rounds)")
    say("| stack | rows/s |\n|---|---|")
    for name, value in medians.items():
        say(f"| {name} | {value:,.0f} |")
    if "samples" in names:
        ratios = sorted(a / b for a, b in zip(samples["mlcontainer"], samples["samples"], strict=True))
        result["ratio"] = {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}
        say(f"mlcontainer / samples: {result['ratio']['median']:.2f}× "
            f"({ratios[0]:.2f}–{ratios[-1]:.2f}); target ≥ 5×")
    return result
