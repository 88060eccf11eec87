"""``serve``: the SageMaker hosting contract on gunicorn with uvicorn workers.

``GET /ping``, ``POST /invocations`` and ``GET /execution-parameters`` are answered by
the bare ASGI application of :mod:`mlcontainer.asgi`; this module reads the
configuration, checks what can be checked before any worker starts, and hands over to
gunicorn (:mod:`mlcontainer.httpserver`). ``make bench`` measured this pair against the
hand-written pre-fork server it replaces and against granian (README, "Benchmarks").

* The master reads the model files (as root), checks that ``MLCONTAINER_USER`` can read
  the code the workers run, binds ``SAGEMAKER_BIND_TO_PORT`` (default 8080) and starts
  ``MODEL_SERVER_WORKERS`` workers (default: the CPUs it may use). Each worker loads the
  model and drops root before it accepts a connection; a model that does not load stops
  the server with its reason. A worker that dies once started is replaced; one stuck on
  a request longer than ``MODEL_SERVER_TIMEOUT`` seconds is killed and replaced; SIGTERM
  stops the server gracefully (requests in flight finish, for up to 10 s).
* Bodies over ``MAX_REQUEST_BYTES`` (default 6 MiB, the SageMaker real-time payload
  limit) get 413 before they are read; headers over 64 KiB get 431; a body that stays
  incomplete for ``MODEL_SERVER_TIMEOUT`` seconds gets 408; idle keep-alive connections
  close after ``MODEL_SERVER_KEEP_ALIVE`` seconds.
* Every error is a JSON body, ``{"message": "<one line>"}``, with its 4xx (or 500) status.

Module-level imports are stdlib only, so the master never starts a thread before fork.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcontainer import paths, privileges
from mlcontainer.asgi import MAX_ERROR_CHARS, WARMUP_ROW, error_body, log
from mlcontainer.errors import UserError
from mlcontainer.model import cpu_count, read_model_files

__all__ = ["MAX_ERROR_CHARS", "WARMUP_ROW", "ServerConfig", "bind", "error_body", "log", "main"]

MAX_HEADER_BYTES = 64 * 1024
GRACEFUL_STOP_SECONDS = 10


def _env_number(env: dict[str, str], name: str, default: float, minimum: float,
                maximum: float, kind: type = int) -> Any:
    text = env.get(name, "").strip()
    if not text:
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        raise UserError(f"{name}={text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if not minimum <= value <= maximum:
        raise UserError(f"{name}={text!r} must be between {minimum} and {maximum}")
    return value


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    workers: int
    timeout: float
    keep_alive: float
    max_bytes: int
    model_dir: Path
    backlog: int = 2048

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServerConfig:
        env = dict(os.environ if env is None else env)
        return cls(
            host=env.get("MODEL_SERVER_HOST", "").strip() or "0.0.0.0",
            port=_env_number(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535),
            workers=_env_number(env, "MODEL_SERVER_WORKERS", cpu_count(), 1, 512),
            timeout=_env_number(env, "MODEL_SERVER_TIMEOUT", 60, 1, 3600, float),
            keep_alive=_env_number(env, "MODEL_SERVER_KEEP_ALIVE", 75, 1, 3600, float),
            max_bytes=_env_number(env, "MAX_REQUEST_BYTES", 6 * 1024 * 1024, 1024, 1 << 30),
            model_dir=paths.model_dir(),
        )


def bind(cfg: ServerConfig) -> socket.socket:
    """The listening socket, bound here so a port in use is said at once."""
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    try:
        sock = socket.create_server((cfg.host, cfg.port), family=family, backlog=cfg.backlog)
    except OSError as err:
        # socket.create_server appends "(while attempting to bind on address ...)" to
        # strerror: the message names the address already. (Not os.strerror: a host name
        # that does not resolve has a getaddrinfo code, which it does not know.)
        reason = (err.strerror or str(err)).split(" (while attempting to bind")[0]
        hint = " (port in use)" if err.errno == errno.EADDRINUSE else ""
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port}: {reason}{hint}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def main(argv: list[str]) -> int:
    if argv:
        log(f"serve takes no arguments (got {' '.join(argv)}); configure it with environment "
            "variables")
    try:
        cfg = ServerConfig.from_env()
        files = read_model_files(cfg.model_dir)
        # The workers drop root once they have loaded the model (read here, as root): the
        # code they run must be readable by MLCONTAINER_USER, or the server cannot run.
        privileges.check_server()
        sock = bind(cfg)
    except UserError as err:
        log(f"serve: {err}")
        return 1
    from mlcontainer import httpserver

    return httpserver.run(cfg, sock, files)
