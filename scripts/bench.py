"""Benchmark the model, its server and the template build.

Sections (``--sections``, all by default):

1. ``model``: the lifecycle of ``scripts/local.py`` (same processes, same seeded split):
   training time, test RMSE, and an ordinary-least-squares linear regression on the same
   split as the baseline to beat; then in-process prediction for 1 and 1,000 raw CSV
   rows: the whole ``/invocations`` handler, our predictor, XGBoost ``inplace_predict``.
2. ``serving``: the model served on 127.0.0.1 by four stacks side by side, loaded with
   ``wrk`` (else a multi-process Python generator) at 1 and 1,000 rows per request and
   each concurrency, in interleaved rounds (median of the rounds): requests/s, p50/p99
   latency and the server's CPU time per request. The stacks (``benchlib.stacks``):

   * ``mlcontainer``: ``mlcontainer serve`` as shipped (gunicorn + uvicorn workers, the
     bare ASGI app of ``mlcontainer.asgi``, our predictor);
   * ``samples``: the SageMaker "bring your own container" samples' stack, nginx ->
     gunicorn sync workers -> Flask, ``pandas.read_csv`` per request, XGBoost predict;
   * ``samples+our-predictor``: the same stack calling mlcontainer's predictor;
   * ``granian``: the same ASGI app under granian, the other server measured.

   Three tables follow, each with a ratio column: the product vs the samples as shipped;
   the same predictor in both stacks (the stack's share alone); the model server vs
   granian (``benchlib.report``); then ``--server-rounds`` more rounds of the two model
   servers alone at 1 row, c=8, where the server was chosen.
3. ``templates``: ``python -c pass``, ``python -c "import mlops_templates.cli"`` and
   ``mlops-templates build`` of every stack, median of ``--runs`` runs each.
4. ``monitor``: ``mlcontainer monitor`` over 100,000 captured records on one core
   (``benchlib.monitor``; target under 10 s).
5. ``batch``: rows per second of 200,000 rows through the local batch transform
   (``mlcontainer.transform``) against ``mlcontainer serve`` and the samples' stack, the
   same driver and settings for both, in ``--rounds`` interleaved rounds
   (``benchlib.batch``; target: at least 5x the samples), and each stack as a job runs it.

The extra stacks need the ``bench`` extra (flask, gunicorn, pandas, granian) and
``nginx`` (Debian package nginx-light); whatever is missing is skipped, saying why.

Usage: ``python scripts/bench.py [--duration 3] [--rounds 5] [--json]``. The machine's
load matters: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local
from benchlib import batch as batch_section
from benchlib import model, report, serving
from benchlib import monitor as monitor_section
from benchlib import templates as templates_section
from benchlib.loadgen import LoadGenerator

REPO = local.REPO
SECTIONS = ("model", "serving", "templates", "monitor", "batch")
STACKS = ("mlcontainer", "samples", "samples+our-predictor", "granian")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=REPO / "mlops.yaml")
    parser.add_argument("-H", "--hyperparameter", type=local._hyperparameter, action="append",
                        default=[], metavar="NAME=VALUE")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--stacks", default=",".join(STACKS),
                        help=f"comma-separated, of: {', '.join(STACKS)}")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved measurements of each cell per stack (median kept)")
    parser.add_argument("--server-rounds", type=int, default=10,
                        help="extra rounds of the model servers alone at 1 row, c=8 (0: none)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per stack")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the batch request")
    parser.add_argument("--workers", type=int, default=None,
                        help="server workers for every stack (default: one per CPU)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--runs", type=int, default=5, help="runs of each templates command")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout (progress on stderr)")
    return parser


def _bodies(run: local.Lifecycle, rows: int) -> dict[int, bytes]:
    test_rows = (run.jobs / "processing/output/test/test.csv").read_text().splitlines()[1:]
    features_only = [",".join(line.split(",")[:8]) for line in test_rows]
    batch = [features_only[i % len(features_only)] for i in range(rows)]
    return {1: features_only[0].encode(), rows: "\n".join(batch).encode()}


def _unpack(run: local.Lifecycle) -> None:
    """model.tar.gz into the hosting root, as SageMaker (and Lifecycle.serve) unpack it."""
    model_dir = run.hosting / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir(parents=True)
    with tarfile.open(run.model_tarball) as archive:
        archive.extractall(model_dir, filter="data")


def serve_section(args: argparse.Namespace, run: local.Lifecycle, bodies: dict[int, bytes],
                  workers: int, say: Any) -> dict[str, Any]:
    """Start the stacks, check their answers, measure every cell, print the tables."""
    levels = [int(x) for x in args.concurrency.split(",")]
    names, skipped = serving.available([s for s in args.stacks.split(",") if s])
    for name, why in skipped.items():
        say(f"  {name} skipped; it needs: {why}")
    scratch = Path(tempfile.mkdtemp(prefix="bench-load-"))
    gen = LoadGenerator(args.loadgen, scratch)
    result: dict[str, Any] = {"loadgen": gen.label, "workers": workers, "skipped": skipped,
                              "duration_s": args.duration, "rounds": args.rounds}
    _unpack(run)
    running = serving.start_stacks(names, run.hosting, workers, say)
    try:
        serving.check_answers(running, say)
        total = len(bodies) * len(levels) * args.rounds * len(running)
        say(f"  {total} measurements of {args.duration:g} s, load generator {gen.label}")
        cells = serving.measure(running, gen, bodies, levels, args.rounds, args, say)
        servers = {name: running[name] for name in report.SERVERS if name in running}
        server_cells = []
        if args.server_rounds and len(servers) > 1:
            say(f"  {args.server_rounds} more rounds of the model servers alone at "
                f"{report.DECISION_ROWS} row, c={report.DECISION_CONCURRENCY}")
            server_cells = serving.measure(
                servers, gen, {1: bodies[1]}, [report.DECISION_CONCURRENCY],
                args.server_rounds, args, say)
    finally:
        for stack in running.values():
            stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result["cells"] = cells
    result["server_cells"] = server_cells
    say(f"\n[serving] {workers} worker(s) per stack, {args.rounds} interleaved rounds of "
        f"{args.duration:g} s per cell (medians); cpu/req: the stack's processes' CPU time "
        "per request (the load generator's excluded)")
    result["summary"] = report.report(cells, list(bodies), levels, say)
    result["summary"]["servers"] = report.compare_servers(server_cells or cells, say)
    report.targets(cells, result["summary"], levels, say)
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sections = set(args.sections.split(","))
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer.model import cpu_count

    from mlops_templates import config as config_mod

    def say(*parts: Any) -> None:
        print(*parts, file=sys.stderr if args.json else sys.stdout, flush=True)

    workers = args.workers or cpu_count()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(),
                                           "load_average_before": os.getloadavg()}}
    say(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if "templates" in sections:
        results["templates"] = templates_section.templates(args.config, REPO, args.runs, say)
    if sections & {"model", "serving", "monitor", "batch"}:
        config = config_mod.load(args.config)
        hyperparameters = {k: str(v) for k, v in config.training.hyperparameters.items()}
        hyperparameters.update(dict(args.hyperparameter))
        results["hyperparameters"] = hyperparameters
        root = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
        run = local.Lifecycle(root=root, hyperparameters=hyperparameters)
        try:
            results["training"] = model.training(run, say)
            bodies = _bodies(run, args.rows)
            if "model" in sections:
                results["in_process"] = model.in_process(run.jobs / "model", bodies, say)
            if "serving" in sections:
                say("\n[serving]")
                results["serving"] = serve_section(args, run, bodies, workers, say)
            if "monitor" in sections:
                results["monitor"] = monitor_section.throughput(run, say)
            if "batch" in sections:
                say("\n[batch]")
                _unpack(run)
                results["batch"] = batch_section.throughput(run, workers, args.rounds, say)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    results["machine"]["load_average_after"] = os.getloadavg()
    say(f"\nload average before {results['machine']['load_average_before'][0]:.2f}, after "
        f"{results['machine']['load_average_after'][0]:.2f} ({os.cpu_count()} CPUs; the "
        "load generator and the servers share them with whatever else runs here)")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
