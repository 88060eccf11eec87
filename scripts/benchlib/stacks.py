"""The serving stacks ``scripts/bench.py`` measures, each a set of real processes on
127.0.0.1 serving the same model:

* ``mlcontainer``: ``mlcontainer serve`` as shipped: gunicorn's master with uvicorn
  workers running mlcontainer's bare ASGI app (:mod:`mlcontainer.asgi`);
* ``samples``: the SageMaker "bring your own container" samples' stack, nginx ->
  gunicorn sync workers -> Flask, ``pandas.read_csv`` per request, calling XGBoost
  (``inplace_predict``, one thread) or, for the same-predictor comparison, mlcontainer's
  ``Predictor.predict``;
* ``granian``: the other well-kept server measured for the model server, serving the
  same ASGI app (:mod:`benchlib.asgi_app`).

Every stack gets the same worker count and one thread per worker.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib.loadgen import http_request

SCRIPTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCRIPTS))
import local

SAMPLES_APP = '''\
"""The serving code of the SageMaker "bring your own container" samples (Flask)."""
import io
import os

import flask
import numpy as np
import pandas as pd

from mlcontainer.model import Predictor
from mlcontainer.schema import NUMERIC, SEX_VALUES, Rows

predictor = Predictor.from_dir(os.environ["BASELINE_MODEL_DIR"], nthread=1)
OURS = os.environ["BASELINE_PREDICTOR"] == "mlcontainer"
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
    if OURS:
        predictions = predictor.predict(rows)
    else:
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

#: granian's options for this app: HTTP/1.1 only (SageMaker speaks it), no websockets,
#: uvloop, no access log; the Rust runtime left at its default (one thread per worker).
GRANIAN_OPTIONS = ["--interface", "asgi", "--http", "1", "--no-ws", "--loop", "uvloop",
                   "--log-level", "warning", "--backlog", "2048"]


def _gunicorn_options() -> list[str]:
    """No control socket (gunicorn >= 25 opens one in $HOME by default: one per master,
    all at the same path)."""
    try:
        from gunicorn.config import KNOWN_SETTINGS
    except ImportError:
        return []
    return (["--no-control-socket"]
            if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else [])


def _missing_modules(*names: str) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)


class Stack:
    """Processes serving ``/ping`` and ``/invocations`` on ``self.port``."""

    name = "stack"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name.replace('+', '-')}-"))
        self.dir.chmod(0o755)  # nginx workers drop to an unprivileged user when run as root
        self.port = local.free_port()
        self.procs: list[subprocess.Popen] = []
        self.log_path = self.dir / "stack.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the stack

    def spawn(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self.procs.append(subprocess.Popen(
            command, cwd=self.dir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True))

    def wait_ready(self, timeout: float = 90) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if http_request(self.port, "GET", "/ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /ping in time")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Mlcontainer(Stack):
    """``python -m mlcontainer serve`` with the hosting root ``prefix``, as shipped."""

    name = "mlcontainer"

    def __init__(self, prefix: Path, workers: int) -> None:
        super().__init__()
        env = local.container_env(prefix, {
            "SAGEMAKER_BIND_TO_PORT": str(self.port), "MODEL_SERVER_HOST": "127.0.0.1",
            "MODEL_SERVER_WORKERS": str(workers)})
        self.spawn([sys.executable, "-m", "mlcontainer", "serve"], env)


class Samples(Stack):
    """nginx -> gunicorn (sync) -> Flask; ``predictor`` is "xgboost" or "mlcontainer"."""

    def __init__(self, model_dir: Path, workers: int, predictor: str = "xgboost") -> None:
        self.name = "samples" if predictor == "xgboost" else "samples+our-predictor"
        super().__init__()
        (self.dir / "predictor.py").write_text(SAMPLES_APP)
        (self.dir / "wsgi.py").write_text("import predictor as myapp\n\napp = myapp.app\n")
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(dir=self.dir, port=self.port))
        env = {**os.environ, "BASELINE_MODEL_DIR": str(model_dir), "OMP_NUM_THREADS": "1",
               "BASELINE_PREDICTOR": predictor,
               "PYTHONPATH": os.pathsep.join([str(self.dir), str(local.CONTAINER)])}
        self.spawn([sys.executable, "-m", "gunicorn", *_gunicorn_options(), "--timeout", "60",
                    "-k", "sync", "-b", f"unix:{self.dir}/gunicorn.sock", "-w", str(workers),
                    "wsgi:app"], env)
        self.spawn([_nginx(), "-p", str(self.dir), "-e", str(self.dir / "error.log"),
                    "-c", str(self.dir / "nginx.conf")])

    @staticmethod
    def missing() -> str | None:
        """What this stack needs that is not installed, or None."""
        problems = []
        if modules := _missing_modules("flask", "gunicorn", "pandas"):
            problems.append(f"pip install {' '.join(modules)}")
        if _nginx() is None:
            problems.append("apt-get install nginx-light")
        return "; ".join(problems) or None


def _asgi_env(prefix: Path, port: int, workers: int) -> dict[str, str]:
    """What ``mlcontainer serve`` gets (and what its ``__main__`` sets), plus scripts/
    for :mod:`benchlib.asgi_app`."""
    env = local.container_env(prefix, {
        "SAGEMAKER_BIND_TO_PORT": str(port), "MODEL_SERVER_HOST": "127.0.0.1",
        "MODEL_SERVER_WORKERS": str(workers), "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE"})
    env["PYTHONPATH"] = os.pathsep.join([str(local.CONTAINER), str(SCRIPTS)])
    return env


class Granian(Stack):
    """granian (Rust HTTP, ASGI interface) serving :mod:`benchlib.asgi_app`."""

    name = "granian"

    def __init__(self, prefix: Path, workers: int) -> None:
        super().__init__()
        granian = Path(sys.executable).with_name("granian")
        command = [str(granian)] if granian.exists() else [sys.executable, "-m", "granian"]
        self.spawn(command + GRANIAN_OPTIONS + [
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers),
            "benchlib.asgi_app:app"], _asgi_env(prefix, self.port, workers))

    @staticmethod
    def missing() -> str | None:
        return "pip install granian" if _missing_modules("granian") else None


def start(stack_type: Any, *args: Any) -> Stack:
    """A started and ready stack; stopped again if it does not get ready."""
    stack = stack_type(*args)
    try:
        stack.wait_ready()
    except BaseException:
        stack.stop()
        raise
    return stack
