"""Run the model's whole lifecycle on this machine, as SageMaker would run it.

preprocess -> train -> evaluate -> quality gate -> serve -> smoke and test requests ->
monitor, each step a real process running the container's own entry point (``python -m
mlcontainer <command>``, what ``docker run IMAGE <command>`` runs) under a temporary
``/opt/ml``-shaped directory (``ML_PREFIX``). SageMaker's part is played in between:
channels are staged, the model directory is packed into ``model.tar.gz`` and unpacked
again for hosting, and every request the server answers is written to a capture file in
SageMaker's data-capture format (``<root>/capture/<endpoint>/AllTraffic/yyyy/mm/dd/hh/``),
which the ``monitor`` job then checks against the baseline evaluate wrote. The smoke
request carries a synthetic inference id, so the monitor leaves it out. Hyperparameters,
the quality gate and the monitor's settings come from the project config.

Usage: ``python scripts/local.py [--keep] [--tune [--trials 5]] [-c mlops.yaml] [-H num_round=50 ...]``.
With ``--keep`` the server keeps running; its URL and PID are printed. With ``--tune`` a
small random search over ``training.tuning``'s ranges trains first (``local_tuning.py``)
and the best trial's model goes on.
"""

from __future__ import annotations

import argparse
import http.client
import json
import operator
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONTAINER = REPO / "container"
SAMPLE_DATA = CONTAINER / "data" / "abalone.csv"
SMOKE_ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
GATE_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def container_env(prefix: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a container process: this checkout's package, ``ML_PREFIX``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SM_", "SAGEMAKER_", "MODEL_SERVER_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CONTAINER), env.get("PYTHONPATH")]))
    env["ML_PREFIX"] = str(prefix)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Step:
    name: str
    seconds: float
    returncode: int
    output: str


class StepFailed(RuntimeError):
    def __init__(self, step: Step) -> None:
        super().__init__(f"{step.name} failed (exit {step.returncode}):\n{step.output}")
        self.step = step


def run_step(command: str, prefix: Path, *args: str, extra_env: dict[str, str] | None = None,
             check: bool = True, timeout: float = 600) -> Step:
    """Run ``mlcontainer <command>`` under ``prefix``; stdout and stderr together."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mlcontainer", command, *args],
        env=container_env(prefix, extra_env), capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    step = Step(command, time.perf_counter() - started, proc.returncode,
                proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise StepFailed(step)
    return step


class Server:
    """A running ``mlcontainer serve`` process on 127.0.0.1."""

    def __init__(self, prefix: Path, *, port: int | None = None, workers: int | None = None,
                 extra_env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {"SAGEMAKER_BIND_TO_PORT": str(self.port), "MODEL_SERVER_HOST": "127.0.0.1"}
        if workers:
            env["MODEL_SERVER_WORKERS"] = str(workers)
        env.update(extra_env or {})
        self.log_path = log or prefix / "serve.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlcontainer", "serve"], env=container_env(prefix, env),
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def wait_ready(self, timeout: float | None = None) -> float:
        """Seconds until ``GET /ping`` answered 200; raises if the server died or timed out.

        The default wait is 60 s, or ``MLOPS_READY_TIMEOUT`` seconds (``make mutate`` sets
        15: a mutant that breaks start-up then fails in seconds, not minutes)."""
        if timeout is None:
            timeout = float(os.environ.get("MLOPS_READY_TIMEOUT") or 60)
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.proc.returncode}:\n"
                                   f"{self.log()}")
            try:
                if self.request("GET", "/ping", timeout=2)[0] == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer /ping within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def detach(self) -> None:
        self._log.close()


@dataclass
class Lifecycle:
    """The /opt/ml-shaped roots of one local run: ``jobs`` for the training-side jobs,
    ``hosting`` for the endpoint (which, as on SageMaker, only sees model.tar.gz)."""

    root: Path
    data: Path = SAMPLE_DATA
    hyperparameters: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def hosting(self) -> Path:
        return self.root / "hosting"

    @property
    def model_tarball(self) -> Path:
        return self.jobs / "processing" / "model" / "model.tar.gz"

    def _record(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def preprocess(self) -> Step:
        raw = self.jobs / "processing" / "input" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.data, raw / self.data.name)
        return self._record(run_step("preprocess", self.jobs))

    def train(self) -> Step:
        output = self.jobs / "processing" / "output"
        for channel in ("train", "validation"):
            target = self.jobs / "input" / "data" / channel
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(output / channel, target)
        config = self.jobs / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(
            json.dumps({k: str(v) for k, v in self.hyperparameters.items()}), encoding="utf-8")
        step = self._record(run_step("train", self.jobs))
        # SageMaker packs /opt/ml/model into model.tar.gz at the end of the job.
        self.model_tarball.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(self.model_tarball, "w:gz") as archive:
            for path in sorted((self.jobs / "model").iterdir()):
                archive.add(path, arcname=path.name)
        return step

    def evaluate(self) -> dict[str, Any]:
        test = self.jobs / "processing" / "test"
        test.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.jobs / "processing" / "output" / "test" / "test.csv", test / "test.csv")
        # The train split's feature profile: evaluate completes it into the monitor's baseline.
        shutil.rmtree(self.jobs / "processing" / "feature_baseline", ignore_errors=True)
        shutil.copytree(self.jobs / "processing" / "output" / "feature_baseline",
                        self.jobs / "processing" / "feature_baseline")
        self._record(run_step("evaluate", self.jobs))
        report = self.jobs / "processing" / "evaluation" / "evaluation.json"
        return json.loads(report.read_text(encoding="utf-8"))

    def serve(self, **kwargs: Any) -> Server:
        """Unpack model.tar.gz where hosting expects it and start the server."""
        model = self.hosting / "model"
        shutil.rmtree(model, ignore_errors=True)
        model.mkdir(parents=True)
        with tarfile.open(self.model_tarball) as archive:
            archive.extractall(model, filter="data")
        return Server(self.hosting, **kwargs)


# -- monitoring: what data capture, a ground-truth upload and the monitor job do -------------

#: The endpoint name local capture files are filed under.
LOCAL_ENDPOINT = "local"


def _capture_module() -> Any:
    if str(CONTAINER) not in sys.path:
        sys.path.insert(0, str(CONTAINER))
    from mlcontainer import capture

    return capture


def capture_requests(server: Server, requests: list[tuple[str, str | None]], root: Path,
                     name: str = "requests.jsonl") -> dict[str | None, list[float]]:
    """POST each ``(csv body, inference id)`` and append the capture record SageMaker would
    write for it under ``root``; each id's predictions."""
    from datetime import UTC, datetime

    capture = _capture_module()
    answers: dict[str | None, list[float]] = {}
    records = []
    for index, (body, inference_id) in enumerate(requests):
        headers = {"Content-Type": "text/csv"}
        if inference_id:
            headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
        status, _, answer = server.request("POST", "/invocations", body.encode(), headers)
        text = answer.decode("utf-8", errors="replace")
        when = datetime.now(UTC)
        records.append(capture.capture_record(body, text, when, f"local-event-{when:%H%M%S}-{index}",
                                              inference_id))
        if status == 200:
            answers[inference_id] = capture.numbers(text, False) or []
    path = capture.capture_path(root, LOCAL_ENDPOINT, datetime.now(UTC), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    return answers


def upload_ground_truth(root: Path, labels: dict[str, float], name: str = "labels.jsonl") -> Path:
    """Ground truth as users upload it: one record per inference id, in the hour's folder."""
    from datetime import UTC, datetime

    capture = _capture_module()
    path = capture.hour_path(root, datetime.now(UTC), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(capture.ground_truth_record([label], key)) + "\n"
                            for key, label in labels.items()), encoding="utf-8")
    return path


def run_monitor(run: Lifecycle, config: Any, window: tuple[str, str],
                output: Path | None = None) -> tuple[Step, dict[str, Any]]:
    """The monitor job over ``run.root/capture`` and ``run.root/ground-truth``, with the
    settings the deployed job gets (``monitor_definition.job_environment``)."""
    sys.path.insert(0, str(REPO))
    from mlops_templates.stacks.deploy_prd.monitor_definition import job_environment

    output = output or run.root / "monitoring"
    env = {**job_environment(config, LOCAL_ENDPOINT),
           "WINDOW_START": window[0], "WINDOW_END": window[1]}
    step = run._record(run_step("monitor", run.jobs, "--capture", str(run.root / "capture"),
                                "--ground-truth", str(run.root / "ground-truth"),
                                "--output", str(output), extra_env=env))
    return step, json.loads((output / "report.json").read_text(encoding="utf-8"))


def labelled_test_requests(run: Lifecycle) -> tuple[list[tuple[str, str | None]], dict[str, float]]:
    """The test split as live requests (one row each, an inference id each) and its labels."""
    lines = (run.jobs / "processing" / "output" / "test" / "test.csv").read_text().splitlines()[1:]
    requests, labels = [], {}
    for index, line in enumerate(lines):
        features, _, rings = line.rpartition(",")
        requests.append((features, f"local-test-{index}"))
        labels[f"local-test-{index}"] = float(rings)
    return requests, labels


def gate(config: Any, report: dict[str, Any]) -> tuple[bool, str]:
    """The training quality gate of ``mlops.yaml``: does the test metric pass?"""
    rule = config.training.gate
    value = report["regression_metrics"][rule.metric]["value"]
    passed = GATE_OPERATORS[rule.operator](value, rule.threshold)
    return passed, f"{rule.metric} {value:.4f} {rule.operator} {rule.threshold:g}"


def _hyperparameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=REPO / "mlops.yaml",
                        help="project config (hyperparameters and quality gate)")
    parser.add_argument("--data", type=Path, default=SAMPLE_DATA, help="raw CSV to train on")
    parser.add_argument("-H", "--hyperparameter", type=_hyperparameter, action="append",
                        default=[], metavar="NAME=VALUE", help="override a hyperparameter")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the run's files here (default: a temporary directory)")
    parser.add_argument("--port", type=int, default=None, help="server port (default: free)")
    parser.add_argument("--workers", type=int, default=None,
                        help="server workers (default: one per CPU)")
    parser.add_argument("--tune", action="store_true",
                        help="search training.tuning's ranges first (random, seeded)")
    parser.add_argument("--trials", type=int, default=5, help="--tune: training runs to try")
    parser.add_argument("--seed", type=int, default=0, help="--tune: seed of the search")
    parser.add_argument("--keep", action="store_true",
                        help="leave the server running and print its URL and PID")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    from mlops_templates import config as config_mod
    from mlops_templates.errors import ConfigError

    try:
        config = config_mod.load(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fixed = config.training.fixed_hyperparameters if args.tune else config.training.hyperparameters
    hyperparameters = {k: str(v) for k, v in fixed.items()}
    hyperparameters.update(dict(args.hyperparameter))
    root = args.workdir or Path(tempfile.mkdtemp(prefix="mlops-local-"))
    root.mkdir(parents=True, exist_ok=True)
    run = Lifecycle(root=root.resolve(), data=args.data.resolve(), hyperparameters=hyperparameters)
    print(f"local run under {run.root} (ML_PREFIX={run.jobs})")
    print("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(hyperparameters.items())))

    def show(step: Step, detail: str = "") -> None:
        print(f"  {step.name:<11} {step.seconds:6.2f} s  {detail}")

    server = None
    try:
        show(run.preprocess(), _last_line(run.steps[-1].output, "split "))
        if args.tune:
            sys.path.insert(0, str(REPO / "scripts"))
            import local_tuning

            local_tuning.search(run, config.training.tuning, hyperparameters, args.trials, args.seed)
        else:
            show(run.train(), _last_line(run.steps[-1].output, "kept "))
        report = run.evaluate()
        metrics = report["regression_metrics"]
        show(run.steps[-1], "  ".join(f"{name}={m['value']:.4f}±{m['standard_deviation']:.4f}"
                                      for name, m in metrics.items()))
        passed, rule = gate(config, report)
        print(f"  {'gate':<11} {'':>8}  {rule}: {'PASS' if passed else 'FAIL'}")
        if not passed:
            print("quality gate failed: the pipeline would not register this model")
            return 1
        started = time.perf_counter()
        server = run.serve(port=args.port, workers=args.workers)
        server.wait_ready()
        show(Step("serve", time.perf_counter() - started, 0, ""), f"ready at {server.url}")
        started = time.perf_counter()
        status, _, body = server.request("POST", "/invocations", SMOKE_ROW.encode(),
                                         {"Content-Type": "text/csv"})
        seconds = time.perf_counter() - started
        if status != 200:
            print(f"smoke request failed: {status} {body.decode(errors='replace')}")
            return 1
        show(Step("smoke", seconds, 0, ""), f"{SMOKE_ROW} -> {body.decode().strip()} rings")
        monitor_locally(run, server, config, show)
    except StepFailed as err:
        print(f"\n{err.step.name} failed (exit {err.step.returncode}):\n{err.step.output}",
              file=sys.stderr)
        return 1
    finally:
        if server is not None and not args.keep:
            server.stop()
    print(f"total {sum(s.seconds for s in run.steps):.2f} s in the batch jobs")
    if args.keep or args.workdir is not None:
        print(f"monitoring report: {run.root / 'monitoring' / 'report.html'}")
    if args.keep:
        server.detach()
        print(f"\nserver running: {server.url} (PID {server.pid}, log {server.log_path})")
        print(f"  curl -s -H 'Content-Type: text/csv' --data '{SMOKE_ROW}' {server.url}/invocations")
        print(f"  stop it with: kill {server.pid}")
    elif args.workdir is None:
        shutil.rmtree(run.root, ignore_errors=True)
    return 0


def monitor_locally(run: Lifecycle, server: Server, config: Any, show: Any) -> None:
    """Capture the smoke request (synthetic) and the test set, then run the monitor."""
    from datetime import UTC, datetime, timedelta

    from mlops_templates.contract import SYNTHETIC_INFERENCE_ID_PREFIX

    started = datetime.now(UTC) - timedelta(seconds=1)
    requests, _ = labelled_test_requests(run)
    requests.insert(0, (SMOKE_ROW, f"{SYNTHETIC_INFERENCE_ID_PREFIX}local-smoke"))
    clock = time.perf_counter()
    capture_requests(server, requests, run.root / "capture")
    show(Step("capture", time.perf_counter() - clock, 0, ""),
         f"{len(requests)} requests in SageMaker's capture format under {run.root / 'capture'}")
    window = (started.isoformat(), (datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    step, report = run_monitor(run, config, window)
    show(step, report_summary(report))


def report_summary(report: dict[str, Any]) -> str:
    """One line: live rows, synthetic requests left out, drifted features."""
    records, drift = report["records"], report["drift"]
    drifted = ", ".join(drift["drifted"]) or "none"
    judged = "" if drift["judged"] else f" (not judged: under {drift['min_rows']} rows)"
    return (f"{records['rows']} live rows, {records['synthetic']} synthetic left out; "
            f"drifted features: {drifted}{judged}")


def _last_line(output: str, prefix: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    return lines[-1] if lines else ""


if __name__ == "__main__":
    sys.exit(main())
