"""Batch inference on this machine, as the ``batch`` stack runs it in AWS.

train and evaluate (as ``make local``) -> serve -> a batch transform of the test split driven the way
SageMaker batch transform drives the serving container (``mlcontainer.transform``: GET
/execution-parameters, lines split into mini-batches of up to MaxPayloadInMB, that many
requests in flight, retries on 5xx, input and prediction joined per line into
``<input>.out``) -> the ``monitor`` job over the batch (drift against the baseline; model
quality against ground truth keyed by row id) -> a file with one bad row, which fails the
job with its line number and writes nothing.

Usage: ``python scripts/batch.py [-c mlops.yaml] [--input FILE] [--workdir DIR]``. An
``--input`` file holds ``<row id>,<8 features>`` lines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local

REPO = local.REPO


def test_split_batch(run: local.Lifecycle, directory: Path) -> tuple[Path, Path]:
    """The test split as a batch input (``row-<n>,<features>``) and its ground truth, one
    Model Monitor ground-truth record per row id."""
    capture = local._capture_module()
    lines = (run.jobs / "processing" / "output" / "test" / "test.csv").read_text().splitlines()[1:]
    rows, truth = [], []
    for index, line in enumerate(lines):
        features, _, rings = line.rpartition(",")
        rows.append(f"row-{index:06d},{features}\n")
        truth.append(json.dumps(capture.ground_truth_record([float(rings)], f"row-{index:06d}")) + "\n")
    source = directory / "input" / "test-split.csv"
    labels = directory / "ground-truth" / "labels.jsonl"
    source.parent.mkdir(parents=True)
    labels.parent.mkdir(parents=True)
    source.write_text("".join(rows))
    labels.write_text("".join(truth))
    return source, labels


def settings() -> Any:
    """The transform's DataProcessing (``contract.BATCH_*``); MaxPayloadInMB and
    MaxConcurrentTransforms are the container's own (GET /execution-parameters)."""
    from mlcontainer import transform

    from mlops_templates import contract

    return transform.Settings(input_filter=contract.BATCH_INPUT_FILTER,
                              join_source=contract.BATCH_JOIN_SOURCE,
                              output_filter=contract.BATCH_OUTPUT_FILTER)


def monitor_environment(config: Any) -> dict[str, str]:
    """The monitor job's settings of ``mlops.yaml``, reading a batch's output."""
    from mlops_templates.stacks.deploy_prd.monitor_definition import job_environment

    return {**job_environment(config, "local-batch"), "INPUT_FORMAT": "batch"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=REPO / "mlops.yaml")
    parser.add_argument("--input", type=Path, default=None,
                        help="a batch file (default: the test split with row ids)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the run's files here (default: a temporary directory)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Long because it is the script's one story, step by step, each printed as it ends."""
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer import transform

    from mlops_templates import config as config_mod

    config = config_mod.load(args.config)
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="mlops-batch-"))).resolve()
    run = local.Lifecycle(root=root, hyperparameters={
        k: str(v) for k, v in config.training.hyperparameters.items()})
    print(f"local batch run under {root}")
    server = None
    try:
        run.preprocess()
        run.train()
        run.evaluate()
        print(f"  trained   {sum(s.seconds for s in run.steps):6.2f} s")
        source, labels = test_split_batch(run, root / "batch")
        if args.input is not None:
            source = args.input.resolve()
        server = run.serve()
        server.wait_ready()
        job = settings()
        started = time.perf_counter()
        [result] = transform.transform(server.url, [source], root / "batch" / "output", job)
        seconds = time.perf_counter() - started
        print(f"  transform {seconds:6.2f} s  {result.records} records in {result.requests} "
              f"request(s) ({result.records / seconds:,.0f} rows/s) -> {result.output}")
        for line in result.output.read_text().splitlines()[:3]:
            print(f"            {line}")
        env = monitor_environment(config)
        step = run._record(local.run_step(
            "monitor", run.jobs, "--capture", str(result.output.parent),
            "--ground-truth", str(labels.parent), "--output", str(root / "batch" / "monitoring"),
            extra_env=env))
        summary = [line for line in step.output.splitlines() if "live rows in" in line]
        print(f"  monitor   {step.seconds:6.2f} s  {summary[-1] if summary else ''}")
        bad = root / "batch" / "bad" / "bad.csv"
        bad.parent.mkdir(parents=True)
        rows = source.read_text().splitlines()
        rows[len(rows) // 2] = rows[len(rows) // 2].replace(",", ",x", 2)
        bad.write_text("\n".join(rows) + "\n")
        try:
            transform.transform(server.url, [bad], root / "batch" / "bad-output", job)
            print("  a bad row did not fail the job")
            return 1
        except transform.TransformError as err:
            written = root / "batch" / "bad-output"
            left = list(written.iterdir()) if written.exists() else []
            print(f"  bad row   fails the job: {err}\n            ({len(left)} file(s) written)")
    except (local.StepFailed, transform.TransformError) as err:
        print(f"\nfailed: {err}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
