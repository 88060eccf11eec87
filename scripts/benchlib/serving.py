"""The serving section: every stack started side by side, checked to answer alike, then
loaded cell by cell (rows per request x concurrency) in interleaved rounds: each round
measures every stack once, in a rotated order, so a burst of load from elsewhere on the
machine hits them all alike; a cell's figure is the median of its rounds.

Three comparisons are read from the same cells (:mod:`benchlib.report`)."""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchlib import stacks as st
from benchlib.loadgen import Load, LoadGenerator, http_request

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
#: Requests mlcontainer and granian must answer identically (status, content type, Allow
#: header, body): they run the same ASGI app, only the HTTP server differs.
PARITY = [
    ("POST", "/invocations", ROW, {"Content-Type": "text/csv"}),
    ("POST", "/invocations", json.dumps({"instances": [ROW.split(",")[:1] + [
        float(x) for x in ROW.split(",")[1:]]]}),
     {"Content-Type": "application/json", "Accept": "application/json"}),
    ("POST", "/invocations", "M,abc,0.365,0.095,0.514,0.2245,0.101,0.15",
     {"Content-Type": "text/csv"}),
    ("POST", "/invocations", "", {"Content-Type": "text/csv"}),
    ("POST", "/invocations", ROW, {"Content-Type": "text/plain"}),
    ("POST", "/invocations", ROW, {"Content-Type": "text/csv", "Accept": "image/png"}),
    ("POST", "/invocations", "[[1, 2]]", {"Content-Type": "application/json"}),
    ("GET", "/invocations", None, {}),
    ("POST", "/ping", "", {}),
    ("HEAD", "/ping", None, {}),
    ("GET", "/ping", None, {}),
    ("GET", "/execution-parameters", None, {}),
    ("GET", "/predict", None, {}),
]


def available(stack_names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The stacks that can run here, and why the others cannot."""
    needs = {"samples": st.Samples.missing, "samples+our-predictor": st.Samples.missing,
             "granian": st.Granian.missing}
    skipped = {name: why for name in stack_names if name in needs and (why := needs[name]())}
    return [name for name in stack_names if name not in skipped], skipped


def start_stacks(names: list[str], prefix: Path, workers: int, say: Any) -> dict[str, st.Stack]:
    model_dir = prefix / "model"
    factories = {
        "mlcontainer": lambda: st.start(st.Mlcontainer, prefix, workers),
        "samples": lambda: st.start(st.Samples, model_dir, workers, "xgboost"),
        "samples+our-predictor": lambda: st.start(st.Samples, model_dir, workers, "mlcontainer"),
        "granian": lambda: st.start(st.Granian, prefix, workers),
    }
    started: dict[str, st.Stack] = {}
    try:
        for name in names:
            say(f"  starting {name} ({workers} worker(s))")
            started[name] = factories[name]()
    except BaseException:
        for stack in started.values():
            stack.stop()
        raise
    return started


def _answer(stack: st.Stack, method: str, path: str, body: str | None,
            headers: dict[str, str]) -> tuple[Any, ...]:
    status, got, content = http_request(
        stack.port, method, path, None if body is None else body.encode(), headers)
    return status, got.get("content-type"), got.get("allow"), content


def check_answers(running: dict[str, st.Stack], say: Any) -> None:
    """Same prediction everywhere; granian answers every PARITY request as we do."""
    values = {name: float(http_request(stack.port, "POST", "/invocations", ROW.encode(),
                                       {"Content-Type": "text/csv"})[2])
              for name, stack in running.items()}
    if max(values.values()) - min(values.values()) > 1e-4:
        raise RuntimeError(f"the stacks disagree on one row: {values}")
    contenders = [name for name in ("granian",) if name in running]
    if "mlcontainer" not in running or not contenders:
        return
    differences = []
    for request in PARITY:
        ours = _answer(running["mlcontainer"], *request)
        differences += [f"{request}: {name} {theirs} != mlcontainer {ours}"
                        for name in contenders
                        if (theirs := _answer(running[name], *request)) != ours]
    if differences:
        raise RuntimeError("the ASGI app under granian does not answer as mlcontainer:\n"
                           + "\n".join(differences))
    say(f"  answers checked: one row alike on every stack; {len(PARITY)} requests (errors "
        f"included) answered identically by mlcontainer and {', '.join(contenders)}")


def _session_cpu(sessions: set[int]) -> dict[int, int]:
    """CPU time (user + system, in clock ticks) of each live process in these sessions."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions:  # field 6 of stat: the session id
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def _measure(gen: LoadGenerator, stack: st.Stack, body: bytes, level: int,
             seconds: float) -> tuple[Load, float, float]:
    """The load, the stack's CPU microseconds per request, and the share of that CPU
    time its busiest process took (1.0: one worker served every connection)."""
    sessions = {proc.pid for proc in stack.procs}
    before = _session_cpu(sessions)
    load = gen(stack.port, body, level, seconds)
    used = [ticks - before.get(pid, 0) for pid, ticks in _session_cpu(sessions).items()]
    total = sum(used)
    cpu_us = total / os.sysconf("SC_CLK_TCK") * 1e6 / load.requests if load.requests else 0.0
    return load, cpu_us, max(used) / total if total else 0.0


def _median_cell(samples: list[tuple[Load, float, float]]) -> dict[str, Any]:
    return {
        "requests_per_s": statistics.median(s[0].requests_per_s for s in samples),
        "p50_ms": statistics.median(s[0].p50_ms for s in samples),
        "p99_ms": statistics.median(s[0].p99_ms for s in samples),
        "server_cpu_us_per_request": statistics.median(s[1] for s in samples),
        "requests": sum(s[0].requests for s in samples),
        "errors": sum(s[0].errors for s in samples),
        "rounds": [dict(asdict(s[0]), server_cpu_us_per_request=round(s[1], 1),
                        busiest_process_cpu_share=round(s[2], 2)) for s in samples],
    }


def measure(running: dict[str, st.Stack], gen: LoadGenerator, bodies: dict[int, bytes],
            levels: list[int], rounds: int, args: Any, say: Any) -> list[dict[str, Any]]:
    """Every cell of every stack, interleaved; progress on one line per measurement."""
    names = list(running)
    total = len(bodies) * len(levels) * rounds * len(names)
    done = 0
    started = time.monotonic()
    cells = []
    for rows, body in bodies.items():
        say(f"  warming up every stack with {rows}-row requests ({args.warmup:g} s each)")
        for stack in running.values():
            gen(stack.port, body, min(8, max(levels)), args.warmup)
        for level in levels:
            samples: dict[str, list[tuple[Load, float, float]]] = {name: [] for name in names}
            for round_ in range(rounds):
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    load, cpu, busiest = _measure(gen, running[name], body, level, args.duration)
                    samples[name].append((load, cpu, busiest))
                    done += 1
                    left = (time.monotonic() - started) / done * (total - done)
                    say(f"  [{done:>3}/{total}, ~{left / 60:.1f} min left] {name:<22} "
                        f"{rows:>5} row(s) c={level:<3} round {round_ + 1}/{rounds}: "
                        f"{load.requests_per_s:>8.0f} req/s  p50 {load.p50_ms:7.2f} ms  "
                        f"p99 {load.p99_ms:7.2f} ms  cpu {cpu:5.0f} us/req, "
                        f"{busiest:4.0%} in one process")
            cells += [{"stack": name, "rows": rows, "concurrency": level,
                       **_median_cell(samples[name])} for name in names]
    return cells
