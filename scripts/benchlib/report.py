"""The serving section's three comparisons, each one table with a ratio column, and the
model servers' comparison over extra rounds at 1 row, c=8."""

from __future__ import annotations

import statistics
from typing import Any

#: The cell the model server was chosen on (README, "Benchmarks"): 1 CSV row, 8 connections.
DECISION_ROWS, DECISION_CONCURRENCY = 1, 8
#: The model servers: mlcontainer's (gunicorn + uvicorn workers) and granian, same app.
SERVERS = ("mlcontainer", "granian")
SINGLE_ROW_TARGET_RATIO = 2.0
P99_TARGET_MS = 10.0

COMPARISONS = [
    ("product", "mlcontainer", ["samples"],
     ("1. The product as shipped vs the samples' stack as shipped: mlcontainer's server and "
     "its predictor (tree walker up to 64 rows) vs nginx -> gunicorn sync -> Flask with "
     "pandas per request and XGBoost inplace_predict")),
    ("stack", "mlcontainer", ["samples+our-predictor"],
     ("2. The same predictor in both stacks (mlcontainer's Predictor.predict): the ratio is "
     "the serving stack's share alone")),
    ("server", "mlcontainer", ["granian"],
     ("3. The model server: mlcontainer's ASGI app (mlcontainer.asgi) under gunicorn with "
      "uvicorn workers, as shipped, and under granian")),
]


def cell(cells: list[dict[str, Any]], stack: str, rows: int, level: int) -> dict[str, Any] | None:
    return next((c for c in cells if c["stack"] == stack and c["rows"] == rows
                 and c["concurrency"] == level), None)


def paired_ratios(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> list[float]:
    """requests/s ratios round by round: both figures of a pair were measured within the
    same round, seconds apart, so a change of load on the machine hits both."""
    if not ours or not theirs:
        return []
    return [a["requests_per_s"] / b["requests_per_s"]
            for a, b in zip(ours["rounds"], theirs["rounds"], strict=False)
            if b["requests_per_s"]]


def _ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> dict[str, float] | None:
    """The median of the paired ratios, and their range."""
    ratios = paired_ratios(ours, theirs)
    if not ratios:
        return None
    return {"median": round(statistics.median(ratios), 2), "min": round(min(ratios), 2),
            "max": round(max(ratios), 2)}


def _show(ratio: dict[str, float] | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})"


def table(cells: list[dict[str, Any]], reference: str, others: list[str],
          bodies: list[int], levels: list[int], say: Any) -> dict[str, Any]:
    """One line per cell: each stack's req/s, p50, p99, CPU per request (medians of the
    rounds); then the requests/s ratio reference/other for each other stack (the median
    of the paired ratios, their range in brackets)."""
    names = [reference, *others]
    ratio_heads = [f"{f'{reference}/{other}':<22}" for other in others]
    say("  rows  conc" + "".join(f" | {name:<32}" for name in names)
        + "".join(f" | {'req/s ratio':<{len(head)}}" for head in ratio_heads))
    say("  " + " " * 10 + " | " + " | ".join(
        f"{'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu us':>7}" for _ in names)
        + "".join(f" | {head}" for head in ratio_heads))
    ratios: dict[str, Any] = {}
    for rows in bodies:
        for level in levels:
            line = f"  {rows:>4} {level:>5}"
            for name in names:
                c = cell(cells, name, rows, level)
                line += (f" | {c['requests_per_s']:>8.0f} {c['p50_ms']:>7.2f} "
                         f"{c['p99_ms']:>7.2f} {c['server_cpu_us_per_request']:>7.0f}"
                         if c else f" | {'-':>8} {'-':>7} {'-':>7} {'-':>7}")
            for other, head in zip(others, ratio_heads, strict=True):
                ratio = _ratio(cell(cells, reference, rows, level), cell(cells, other, rows, level))
                ratios[f"{other}:{rows}x{level}"] = ratio
                line += f" | {_show(ratio):>{len(head)}}"
            say(line)
    return ratios


def compare_servers(cells: list[dict[str, Any]], say: Any) -> dict[str, Any]:
    """mlcontainer's server against granian at 1 row, c=8, round by round: requests/s
    (the median of the paired ratios) and p99 (medians of the rounds)."""
    ours = cell(cells, "mlcontainer", DECISION_ROWS, DECISION_CONCURRENCY)
    other = cell(cells, "granian", DECISION_ROWS, DECISION_CONCURRENCY)
    if ours is None or other is None:
        return {}
    say(f"\nThe model servers over {len(ours['rounds'])} interleaved rounds at "
        f"{DECISION_ROWS} row, c={DECISION_CONCURRENCY} (medians; then each round's "
        "requests/s and, in brackets, the busiest process's share of the server's CPU time):")
    for c in (ours, other):
        say(f"  {c['stack']:<12} {c['requests_per_s']:>7.0f} req/s  p50 {c['p50_ms']:5.2f} ms  "
            f"p99 {c['p99_ms']:5.2f} ms  cpu {c['server_cpu_us_per_request']:4.0f} us/req  "
            + " ".join(f"{r['requests_per_s']:.0f}({r['busiest_process_cpu_share']:.0%})"
                       for r in c["rounds"]))
    paired = _ratio(ours, other)
    say(f"  mlcontainer/granian requests/s {_show(paired)}; p99 {ours['p99_ms']:.2f} ms vs "
        f"{other['p99_ms']:.2f} ms")
    return {"ratio": paired, "p99_ms": ours["p99_ms"], "granian_p99_ms": other["p99_ms"]}


def shares(cells: list[dict[str, Any]], say: Any) -> dict[str, float]:
    """At 1 row, c=8: the product's lead over the samples split into the stack's part
    and the predictor's (ratios of medians, which multiply), and the same in CPU time."""
    ours, samples, mixed = (cell(cells, name, DECISION_ROWS, DECISION_CONCURRENCY)
                            for name in ("mlcontainer", "samples", "samples+our-predictor"))
    if not (ours and samples and mixed):
        return {}
    stack = ours["requests_per_s"] / mixed["requests_per_s"]
    predictor = mixed["requests_per_s"] / samples["requests_per_s"]
    cpu = "server_cpu_us_per_request"
    say(f"\n  at {DECISION_ROWS} row, c={DECISION_CONCURRENCY} (medians): the product serves "
        f"{stack * predictor:.1f}x the samples' requests/s = stack {stack:.1f}x x predictor "
        f"{predictor:.2f}x;\n  CPU per request: samples {samples[cpu]:.0f} us, with our "
        f"predictor {mixed[cpu]:.0f} us (the predictor saves {samples[cpu] - mixed[cpu]:.0f} us), "
        f"mlcontainer {ours[cpu]:.0f} us (the stack saves {mixed[cpu] - ours[cpu]:.0f} us)")
    return {"product": round(stack * predictor, 2), "stack": round(stack, 2),
            "predictor": round(predictor, 2), "samples_cpu_us": samples[cpu],
            "samples_with_our_predictor_cpu_us": mixed[cpu], "mlcontainer_cpu_us": ours[cpu]}


def report(cells: list[dict[str, Any]], bodies: list[int], levels: list[int],
           say: Any) -> dict[str, Any]:
    """Print the three comparison tables and the decision; return the ratios."""
    present = {c["stack"] for c in cells}
    summary: dict[str, Any] = {}
    for key, reference, others, title in COMPARISONS:
        others = [name for name in others if name in present]
        if reference not in present or not others:
            continue
        say(f"\n{title}:")
        summary[key] = table(cells, reference, others, bodies, levels, say)
    if "samples" in present and "samples+our-predictor" in present:
        summary["shares"] = shares(cells, say)
    return summary


def targets(cells: list[dict[str, Any]], summary: dict[str, Any], levels: list[int],
            say: Any) -> None:
    """The product's standing targets: >= 2x the samples at 1 row, p99 < 10 ms at c=8."""
    product = summary.get("product", {})
    single = [(product.get(f"samples:1x{level}") or {}).get("median") for level in levels]
    if product and all(single):
        met = min(single) >= SINGLE_ROW_TARGET_RATIO
        summary["single_row_ratio_target_met"] = met
        say(f"\nproduct single-row ratio >= {SINGLE_ROW_TARGET_RATIO:g}x the samples at every "
            f"concurrency: {'met' if met else 'NOT met'}")
    at8 = cell(cells, "mlcontainer", 1, 8)
    if at8 is not None:
        summary["single_row_p99_ms_at_8"] = at8["p99_ms"]
        summary["p99_target_met"] = at8["p99_ms"] < P99_TARGET_MS
        say(f"product single-row p99 at concurrency 8: {at8['p99_ms']:.2f} ms (target < "
            f"{P99_TARGET_MS:g} ms: {'met' if summary['p99_target_met'] else 'NOT met'})")
