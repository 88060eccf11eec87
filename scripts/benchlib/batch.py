"""The batch section: rows per second through the local batch transform
(``mlcontainer.transform``, the driver ``make batch`` runs) against ``mlcontainer serve``
and against the samples' nginx -> gunicorn -> Flask stack, the same driver, the same file
and the same settings for both: ``MaxPayloadInMB`` 1 (every record of a mini-batch parsed
and predicted in one request), ``MaxConcurrentTransforms`` = the worker count, the row id
filtered out and joined back (``contract.BATCH_*``). Each stack is measured in interleaved
rounds; the figure is the median of the rounds, the ratio the median of the paired rounds.

Two more rows compare each stack as a job would run it with only what it must set:
mlcontainer with its own ``GET /execution-parameters`` (as a SageMaker job that leaves the
fields unset does), and the samples, which have no such route, with SageMaker's defaults
(``MaxConcurrentTransforms`` 1) but ``MaxPayloadInMB`` 5: the default 6 MB requests would be
refused by their nginx (``client_max_body_size 5m``), failing the job.

Before the rounds, :func:`in_process` times one 1 MB mini-batch in this process, one
thread, step by step in both stacks' ``/invocations`` code: where the time goes, and the
ceiling XGBoost's own share puts on the ratio at equal settings.
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
#: The most the samples' nginx accepts (``client_max_body_size 5m``).
SAMPLES_PAYLOAD_MB = 5
OWN = "mlcontainer (its own parameters)"
SAMPLES_DEFAULT = f"samples (MaxPayloadInMB {SAMPLES_PAYLOAD_MB}, the rest default)"


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
    bare = transform.replace(fixed, max_payload_mb=transform.DEFAULT_MAX_PAYLOAD_MB,
                             max_concurrent_transforms=transform.DEFAULT_CONCURRENCY)
    # (stack, settings, the fields the job sets) of each row, "same settings" rows first
    jobs = {name: (name, fixed, {"max_payload_mb", "max_concurrent_transforms", "batch_strategy"})
            for name in names}
    jobs[OWN] = ("mlcontainer", bare, set())
    if "samples" in names:
        jobs[SAMPLES_DEFAULT] = ("samples", transform.replace(bare, max_payload_mb=SAMPLES_PAYLOAD_MB),
                                 {"max_payload_mb"})
    samples: dict[str, list[float]] = {label: [] for label in jobs}
    try:
        source = _input(run, scratch, rows)
        result: dict[str, Any] = {"in_process": in_process(run.hosting / "model", source, say)}
        running["mlcontainer"] = st.start(st.Mlcontainer, run.hosting, workers)
        if "samples" in names:
            running["samples"] = st.start(st.Samples, run.hosting / "model", workers, "xgboost")
        outputs = {}
        labels = list(jobs)
        for round_ in range(rounds):
            for label in labels[round_ % len(labels):] + labels[:round_ % len(labels)]:
                name, settings, given = jobs[label]
                rate, outputs[label] = _once(f"http://127.0.0.1:{running[name].port}", source,
                                             scratch / "out", settings, given)
                samples[label].append(rate)
            say(f"  round {round_ + 1}/{rounds}: " + ", ".join(
                f"{label} {values[-1]:,.0f} rows/s" for label, values in samples.items()))
        _same_predictions(outputs)
    finally:
        for stack in running.values():
            stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return result | _report(samples, rows, workers, say)


def in_process(model_dir: Path, source: Path, say: Any) -> dict[str, float]:
    """Microseconds per row of one 1 MB mini-batch of ``source`` (row ids filtered out), in
    this process, one thread, step by step: our ``/invocations`` handler and its parts, and
    the samples' (the steps of their Flask app, ``benchlib.stacks.SAMPLES_APP``)."""
    import io

    import numpy as np
    import pandas as pd
    from mlcontainer.inference import InvocationHandler, format_predictions, parse_body
    from mlcontainer.model import Predictor
    from mlcontainer.schema import SEX_VALUES, Rows

    from benchlib.model import median_us

    records = [line.partition(b",")[2] for line in source.read_bytes().splitlines()]
    body = b"\n".join(records)[: PAYLOAD_MB * 1024 * 1024].rpartition(b"\n")[0]
    count = body.count(b"\n") + 1
    predictor = Predictor.from_dir(model_dir, nthread=1)
    handler = InvocationHandler(predictor)
    parsed = parse_body(body, "text/csv")
    features = predictor.spec.encode(parsed)
    predictions = predictor.booster.inplace_predict(features, validate_features=False)
    codes = {value: code for code, value in enumerate(SEX_VALUES)}

    def samples_handler() -> str:  # their steps: read_csv, encode, inplace_predict, to_csv
        data = pd.read_csv(io.StringIO(body.decode("utf-8")), header=None)
        rows = Rows(sex=data[0].map(codes).to_numpy(dtype=np.int8),
                    numeric=data.iloc[:, 1:8].to_numpy(dtype=np.float64))
        answer = predictor.booster.inplace_predict(predictor.spec.encode(rows), validate_features=False)
        out = io.StringIO()
        pd.DataFrame({"results": answer}).to_csv(out, header=False, index=False)
        return out.getvalue()

    steps = {
        "ours: handler": lambda: handler(body, "text/csv", None),
        "ours: parse": lambda: parse_body(body, "text/csv"),
        "ours: encode": lambda: predictor.spec.encode(parsed),
        "both: XGBoost inplace_predict": lambda: predictor.booster.inplace_predict(
            features, validate_features=False),
        "ours: format": lambda: format_predictions(predictions, "text/csv"),
        "samples: handler": samples_handler,
        "samples: read_csv": lambda: pd.read_csv(io.StringIO(body.decode("utf-8")), header=None),
        "samples: to_csv": lambda: pd.DataFrame({"results": predictions}).to_csv(
            io.StringIO(), header=False, index=False),
    }
    per_row = {step: median_us(function) / count for step, function in steps.items()}
    say(f"  in-process, one thread, one {PAYLOAD_MB} MB mini-batch ({count:,} rows), µs per row: "
        + ", ".join(f"{step} {value:.3f}" for step, value in per_row.items()))
    xgboost = per_row["both: XGBoost inplace_predict"]
    say(f"  the samples' handler over XGBoost alone: {per_row['samples: handler'] / xgboost:.2f}× "
        "(the most any server calling XGBoost could gain over theirs at equal settings)")
    return {"rows": count, **per_row}


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


def _ratios(samples: dict[str, list[float]], ours: str, theirs: str) -> dict[str, float]:
    ratios = sorted(a / b for a, b in zip(samples[ours], samples[theirs], strict=True))
    return {"median": statistics.median(ratios), "min": ratios[0], "max": ratios[-1]}


def _report(samples: dict[str, list[float]], rows: int, workers: int, say: Any) -> dict[str, Any]:
    medians = {label: statistics.median(values) for label, values in samples.items()}
    result: dict[str, Any] = {"rows": rows, "workers": workers, "max_payload_mb": PAYLOAD_MB,
                              "rows_per_s": medians, "rounds": samples}
    say(f"\n[batch] {rows:,} rows through the local transform, {workers} worker(s) (medians of "
        f"{len(samples['mlcontainer'])} rounds); the first two rows with the same settings: "
        f"MaxPayloadInMB {PAYLOAD_MB}, MaxConcurrentTransforms {workers}")
    say("| stack | rows/s |\n|---|---|")
    for label, value in medians.items():
        say(f"| {label} | {value:,.0f} |")
    if "samples" in samples:
        result["ratio"] = _ratios(samples, "mlcontainer", "samples")
        result["ratio_as_run"] = _ratios(samples, OWN, SAMPLES_DEFAULT)
        for key, what in (("ratio", "same settings"), ("ratio_as_run", "each as a job runs it")):
            say(f"mlcontainer / samples, {what}: {result[key]['median']:.2f}× "
                f"({result[key]['min']:.2f}–{result[key]['max']:.2f}); target ≥ 5×")
    return result
