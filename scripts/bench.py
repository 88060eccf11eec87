"""Benchmark the model and its server against the stack the public SageMaker samples ship.

1. Training: the lifecycle of ``scripts/local.py`` (same processes, same seeded split);
   training time, test RMSE, and an ordinary-least-squares linear regression on the
   same split as the baseline to beat.
2. In-process prediction for 1 and 1,000 raw CSV rows: the whole ``/invocations``
   handler, the prediction alone, and XGBoost ``inplace_predict`` alone.
3. Serving on 127.0.0.1, measured with a real load generator (``wrk`` when installed,
   else a multi-process Python generator on keep-alive connections): requests/s and
   p50/p99 latency for 1-row and 1,000-row CSV requests at each concurrency, for

   * ``mlcontainer``: this container's server;
   * ``baseline``: nginx -> gunicorn sync workers -> Flask, ``pandas.read_csv`` per
     request, as in the SageMaker "bring your own container" samples, with the same
     worker count, the same model, the same feature encoding and XGBoost
     ``inplace_predict`` (one thread per worker, as ours), so the stack is what differs.

   The baseline needs ``nginx`` (Debian package nginx-light) and the Python packages
   flask, gunicorn and pandas; without them it is skipped and the reason printed.

Usage: ``python scripts/bench.py [--duration 10] [--json]``. The machine's load matters:
the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local

REPO = local.REPO
SINGLE_ROW_TARGET_RATIO = 2.0
P99_TARGET_MS = 10.0
RMSE_TARGET = 2.20


# --- training ---------------------------------------------------------------------------------

def linear_baseline_rmse(jobs: Path) -> float:
    """Ordinary least squares on one-hot sex + the seven measurements (plus intercept)."""
    import numpy as np

    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer.schema import parse_csv

    def design(split: str) -> tuple[Any, Any]:
        rows = parse_csv((jobs / "processing/output" / split / f"{split}.csv").read_text(),
                         label="required")
        onehot = np.eye(3)[rows.sex]
        return np.column_stack([onehot, rows.numeric]), rows.label

    x_train, y_train = design("train")
    x_test, y_test = design("test")
    coef, *_ = np.linalg.lstsq(x_train, y_train, rcond=None)  # one-hot columns sum to 1
    return float(np.sqrt(np.mean((x_test @ coef - y_test) ** 2)))


# --- in-process prediction --------------------------------------------------------------------

def _median_us(function: Any, *, seconds: float = 1.0, minimum: int = 5) -> float:
    function()
    samples = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < minimum:
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def in_process(model_dir: Path, bodies: dict[int, bytes]) -> dict[str, dict[str, float]]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer.inference import InvocationHandler, parse_body
    from mlcontainer.model import Predictor

    predictor = Predictor.from_dir(model_dir, nthread=1)
    handler = InvocationHandler(predictor)
    results = {}
    for rows, body in bodies.items():
        parsed = parse_body(body, "text/csv")
        features = predictor.spec.encode(parsed)
        results[str(rows)] = {
            "handler_us": _median_us(lambda body=body: handler(body, "text/csv", None)),
            "encode_predict_us": _median_us(lambda parsed=parsed: predictor.predict(parsed)),
            "xgboost_inplace_predict_us": _median_us(
                lambda features=features: predictor.booster.inplace_predict(
                    features, validate_features=False)),
        }
    return results


# --- the baseline stack -------------------------------------------------------------------------

BASELINE_APP = '''\
"""The serving code of the SageMaker "bring your own container" samples (Flask)."""
import io
import os

import flask
import numpy as np
import pandas as pd

from mlcontainer.model import Predictor
from mlcontainer.schema import NUMERIC, SEX_VALUES, Rows

predictor = Predictor.from_dir(os.environ["BASELINE_MODEL_DIR"], nthread=1)
SEX = {value: code for code, value in enumerate(SEX_VALUES)}

app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    health = predictor is not None
    status = 200 if health else 404
    return flask.Response(response="\\n", status=status, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.content_type == "text/csv":
        data = flask.request.data.decode("utf-8")
        s = io.StringIO(data)
        data = pd.read_csv(s, header=None)
    else:
        return flask.Response(response="This predictor only supports CSV data", status=415,
                              mimetype="text/plain")
    rows = Rows(sex=data[0].map(SEX).to_numpy(dtype=np.int8),
                numeric=data.iloc[:, 1:1 + len(NUMERIC)].to_numpy(dtype=np.float64))
    features = predictor.spec.encode(rows)
    predictions = predictor.booster.inplace_predict(features, validate_features=False)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    result = out.getvalue()
    return flask.Response(response=result, status=200, mimetype="text/csv")
'''

NGINX_CONF = '''\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;

events {{
  # defaults
}}

http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log {dir}/access.log combined;
  client_body_temp_path {dir}/client_body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;

  upstream gunicorn {{
    server unix:{dir}/gunicorn.sock;
  }}

  server {{
    listen 127.0.0.1:{port} deferred;
    client_max_body_size 5m;

    keepalive_timeout 5;
    proxy_read_timeout 1200s;

    location ~ ^/(ping|invocations) {{
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Host $http_host;
      proxy_redirect off;
      proxy_pass http://gunicorn;
    }}

    location / {{
      return 404 "{{}}";
    }}
  }}
}}
'''


def baseline_missing() -> str | None:
    """Why the baseline cannot run here, or None."""
    missing = [name for name in ("flask", "gunicorn", "pandas")
               if subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                                 check=False).returncode != 0]
    problems = [f"pip install {' '.join(missing)}"] if missing else []
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        problems.append("apt-get install nginx-light")
    return "; ".join(problems) or None


class Baseline:
    """nginx -> gunicorn (sync) -> Flask, in a temporary directory."""

    def __init__(self, model_dir: Path, workers: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
        self.dir.chmod(0o755)  # nginx workers drop to an unprivileged user when run as root
        self.port = local.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "predictor.py").write_text(BASELINE_APP)
        (self.dir / "wsgi.py").write_text("import predictor as myapp\n\napp = myapp.app\n")
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(dir=self.dir, port=self.port))
        env = {**os.environ, "BASELINE_MODEL_DIR": str(model_dir), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(self.dir), str(local.CONTAINER)])}
        self.log = open(self.dir / "stack.log", "wb")  # noqa: SIM115
        self.gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--timeout", "60", "-k", "sync",
             "-b", f"unix:{self.dir}/gunicorn.sock", "-w", str(workers), "wsgi:app"],
            cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.nginx = subprocess.Popen(
            [nginx, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
             "-c", str(self.dir / "nginx.conf")],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            for proc in (self.gunicorn, self.nginx):
                if proc.poll() is not None:
                    raise RuntimeError(f"baseline exited: {(self.dir / 'stack.log').read_text()}")
            try:
                if http_request(self.port, "GET", "/ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the baseline did not answer /ping in time")

    def stop(self) -> None:
        for proc in (self.nginx, self.gunicorn):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- load generators -------------------------------------------------------------------------------

@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def run_wrk(port: int, body: bytes, concurrency: int, seconds: float, scratch: Path) -> Load:
    script = scratch / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/csv"\n'
                      f'wrk.body = [==[{body.decode()}]==]\n')
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, check=True).stdout

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
        return float(value) * _UNITS[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                p50_ms=latency("50"), p99_ms=latency("99"),
                requests=int(re.search(r"(\d+) requests in", out).group(1)),
                errors=errors + (int(non_2xx.group(1)) if non_2xx else 0))


async def _client_loop(port: int, payload: bytes, connections: int, until: float,
                       latencies: list[float], errors: list[int]) -> None:
    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < until:
                started = time.perf_counter()
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))


def _client_process(port: int, payload: bytes, connections: int, until: float,
                    queue: Any) -> None:
    latencies: list[float] = []
    errors = [0]
    try:
        asyncio.run(_client_loop(port, payload, connections, until, latencies, errors))
    except (OSError, asyncio.IncompleteReadError):
        errors[0] += 1
    queue.put((latencies, errors[0]))


def run_python_load(port: int, body: bytes, concurrency: int, seconds: float) -> Load:
    """Keep-alive connections spread over up to one process per CPU, closed loop."""
    payload = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    processes = min(concurrency, os.cpu_count() or 1)
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    until = time.perf_counter() + seconds
    workers = [context.Process(target=_client_process, args=(port, payload, share, until, queue))
               for share in shares]
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    errors = 0
    for _ in workers:
        got, failed = queue.get()
        latencies.extend(got)
        errors += failed
    for worker in workers:
        worker.join()
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3 if latencies else 0.0

    return Load(requests_per_s=len(latencies) / seconds, p50_ms=percentile(0.50),
                p99_ms=percentile(0.99), requests=len(latencies), errors=errors)


# --- the run -------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", type=Path, default=REPO / "mlops.yaml")
    parser.add_argument("-H", "--hyperparameter", type=local._hyperparameter, action="append",
                        default=[], metavar="NAME=VALUE")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load test")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per stack")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the batch request")
    parser.add_argument("--workers", type=int, default=None,
                        help="server workers for both stacks (default: one per CPU)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-baseline", action="store_true", help="measure mlcontainer only")
    parser.add_argument("--json", action="store_true", help="print the results as JSON only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.path.insert(0, str(REPO))
    from mlops_templates import config as config_mod

    say = (lambda *a, **k: None) if args.json else print
    config = config_mod.load(args.config)
    hyperparameters = {k: str(v) for k, v in config.training.hyperparameters.items()}
    hyperparameters.update(dict(args.hyperparameter))
    levels = [int(x) for x in args.concurrency.split(",")]
    sys.path.insert(0, str(local.CONTAINER))
    from mlcontainer.model import cpu_count

    workers = args.workers or cpu_count()
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if wrk_version() else "python"
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()},
        "hyperparameters": hyperparameters,
        "loadgen": f"wrk {wrk_version()}" if loadgen == "wrk" else "python (asyncio, keep-alive)",
        "workers": workers, "duration_s": args.duration,
    }
    root = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    run = local.Lifecycle(root=root, hyperparameters=hyperparameters)
    try:
        say(f"training ({', '.join(f'{k}={v}' for k, v in sorted(hyperparameters.items()))})")
        run.preprocess()
        step = run.train()
        report = run.evaluate()
        metadata = json.loads((run.jobs / "model/training.json").read_text())
        rmse = report["regression_metrics"]["rmse"]["value"]
        linear = linear_baseline_rmse(run.jobs)
        results["training"] = {
            "job_seconds": round(step.seconds, 3),
            "boosting_seconds": metadata["training_seconds"],
            "rounds": metadata["rounds"],
            "test_rmse": rmse,
            "test_rmse_sd": report["regression_metrics"]["rmse"]["standard_deviation"],
            "linear_regression_test_rmse": linear,
            "rmse_target": RMSE_TARGET,
            "rmse_target_met": rmse <= RMSE_TARGET,
        }
        say(f"  train job {step.seconds:.2f} s (boosting {metadata['training_seconds']:.2f} s, "
            f"{metadata['rounds']} rounds)")
        say(f"  test RMSE {rmse:.4f} rings (bootstrap sd "
            f"{results['training']['test_rmse_sd']:.4f}); linear regression {linear:.4f}; "
            f"target <= {RMSE_TARGET}: {'met' if rmse <= RMSE_TARGET else 'NOT met'}")

        test_rows = (run.jobs / "processing/output/test/test.csv").read_text().splitlines()[1:]
        features_only = [",".join(line.split(",")[:8]) for line in test_rows]
        batch = [features_only[i % len(features_only)] for i in range(args.rows)]
        bodies = {1: features_only[0].encode(), args.rows: "\n".join(batch).encode()}

        model_dir = run.jobs / "model"
        results["in_process"] = in_process(model_dir, bodies)
        say("\nin-process, one thread (median):")
        for rows, timing in results["in_process"].items():
            say(f"  {rows:>5} row(s): handler {timing['handler_us'] / 1e3:8.3f} ms  "
                f"encode+predict {timing['encode_predict_us'] / 1e3:8.3f} ms  "
                "xgboost inplace_predict "
                f"{timing['xgboost_inplace_predict_us'] / 1e3:8.3f} ms")

        stacks: dict[str, Any] = {}
        server = run.serve(workers=workers)
        server.wait_ready()
        stacks["mlcontainer"] = server
        missing = None if args.no_baseline else baseline_missing()
        baseline = None
        if args.no_baseline:
            results["baseline_skipped"] = "--no-baseline"
        elif missing:
            results["baseline_skipped"] = f"needs: {missing}"
            say(f"\nbaseline skipped; it needs: {missing}")
        else:
            baseline = Baseline(model_dir, workers)
            baseline.wait_ready()
            stacks["baseline"] = baseline
        try:
            # Both stacks must give the same answers before their speed means anything.
            answers = {name: http_request(stack.port, "POST", "/invocations", bodies[1],
                                          {"Content-Type": "text/csv"}) for name, stack in stacks.items()}
            values = {name: float(body) for name, (status, body) in answers.items()}
            if max(values.values()) - min(values.values()) > 1e-4:
                raise RuntimeError(f"the stacks disagree on one row: {values}")

            say(f"\nserving on 127.0.0.1, {workers} worker(s) each, load generator "
                f"{results['loadgen']}, {args.duration:g} s per cell")
            say(f"  {'stack':<12} {'rows':>5} {'conc':>5} {'req/s':>9} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'errors':>7}")
            cells = []
            with tempfile.TemporaryDirectory() as scratch:
                for rows, body in bodies.items():
                    for name, stack in stacks.items():
                        warm = min(8, max(levels))
                        if loadgen == "wrk":
                            run_wrk(stack.port, body, warm, args.warmup, Path(scratch))
                        else:
                            run_python_load(stack.port, body, warm, args.warmup)
                        for level in levels:
                            load = (run_wrk(stack.port, body, level, args.duration, Path(scratch))
                                    if loadgen == "wrk"
                                    else run_python_load(stack.port, body, level, args.duration))
                            cells.append({"stack": name, "rows": rows, "concurrency": level,
                                          **asdict(load)})
                            say(f"  {name:<12} {rows:>5} {level:>5} {load.requests_per_s:>9.0f} "
                                f"{load.p50_ms:>8.2f} {load.p99_ms:>8.2f} {load.errors:>7}")
            results["serving"] = cells
        finally:
            server.stop()
            if baseline is not None:
                baseline.stop()

        def cell(stack: str, rows: int, level: int) -> dict[str, Any] | None:
            return next((c for c in results["serving"] if c["stack"] == stack
                         and c["rows"] == rows and c["concurrency"] == level), None)

        summary: dict[str, Any] = {}
        if baseline is not None:
            ratios = {}
            for rows in bodies:
                for level in levels:
                    ours, theirs = cell("mlcontainer", rows, level), cell("baseline", rows, level)
                    if theirs["requests_per_s"] > 0:
                        ratios[f"{rows}x{level}"] = round(
                            ours["requests_per_s"] / theirs["requests_per_s"], 2)
            summary["throughput_ratio"] = ratios
            single = [ratios[f"1x{level}"] for level in levels if f"1x{level}" in ratios]
            summary["single_row_ratio_target_met"] = bool(single) and min(single) >= SINGLE_ROW_TARGET_RATIO
            say("\nthroughput ratio mlcontainer / baseline: " + ", ".join(
                f"{rows} row(s) c={level}: {ratios.get(f'{rows}x{level}', float('nan')):.1f}x"
                for rows in bodies for level in levels))
            say(f"single-row ratio >= {SINGLE_ROW_TARGET_RATIO:g}x at every concurrency: "
                f"{'met' if summary['single_row_ratio_target_met'] else 'NOT met'}")
        at8 = cell("mlcontainer", 1, 8)
        if at8 is not None:
            summary["single_row_p99_ms_at_8"] = at8["p99_ms"]
            summary["p99_target_met"] = at8["p99_ms"] < P99_TARGET_MS
            say(f"single-row p99 at concurrency 8: {at8['p99_ms']:.2f} ms (target < "
                f"{P99_TARGET_MS:g} ms: {'met' if summary['p99_target_met'] else 'NOT met'})")
        results["summary"] = summary
        results["machine"]["load_average_after"] = os.getloadavg()
        say(f"load average before {results['machine']['load_average_before'][0]:.2f}, "
            f"after {results['machine']['load_average_after'][0]:.2f} "
            f"({os.cpu_count()} CPUs; load generator and servers share them)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
