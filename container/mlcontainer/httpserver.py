"""gunicorn's master with uvicorn workers, configured for ``serve`` (:mod:`mlcontainer.server`).

* gunicorn's master keeps ``MODEL_SERVER_WORKERS`` workers on the socket ``serve`` bound,
  replaces one that dies, kills one whose event loop stops ticking for
  ``MODEL_SERVER_TIMEOUT`` seconds (a request stuck in prediction), stops on SIGTERM
  gracefully, and stops the server when a worker cannot start (the model does not load).
* Each worker is one uvicorn event loop (uvloop, the httptools parser) running the ASGI
  app of :mod:`mlcontainer.asgi`, one thread per worker.
* :class:`Protocol` is uvicorn's httptools protocol with this container's answers to bad
  HTTP: a JSON 400 for a malformed request, 431 for headers over ``MAX_HEADER_BYTES``.
* :class:`Balance` keeps concurrent keep-alive clients spread over the workers.

Everything here is imported by the master before it forks (no threads start), so a
worker imports nothing once it has dropped root.
"""

from __future__ import annotations

import math
import mmap
import os
import pwd
import select
import socket
import time
from typing import Any, ClassVar

from gunicorn.app.base import BaseApplication
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from mlcontainer import privileges
from mlcontainer.asgi import App, error_body, log
from mlcontainer.model import ModelFiles
from mlcontainer.server import GRACEFUL_STOP_SECONDS, MAX_HEADER_BYTES, ServerConfig


class _HeadersTooLarge(Exception):
    pass


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; bad HTTP gets a JSON 400, big headers a 431."""

    #: The worker's open connections by socket, and a poll set of them (:class:`Balance`).
    open: ClassVar[dict[int, Protocol]] = {}
    readable: ClassVar[Any] = select.poll()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_bytes = 0
        self.headers_too_large = False
        self.fd = -1

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fd = sock.fileno()
            Protocol.open[self.fd] = self
            Protocol.readable.register(self.fd, select.POLLIN)

    def connection_lost(self, exc: Exception | None) -> None:
        # The socket number may already be a newer connection's: leave that one watched.
        if Protocol.open.get(self.fd) is self:
            del Protocol.open[self.fd]
            Protocol.readable.unregister(self.fd)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self.header_bytes = 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > MAX_HEADER_BYTES:
            self.headers_too_large = True
            raise _HeadersTooLarge  # the parser stops: uvicorn answers send_400_response
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if self.headers_too_large:
            status, message = 431, f"request headers exceed {MAX_HEADER_BYTES} bytes"
            log(f"431: {message}")
        else:
            status, message = 400, "malformed HTTP request: not valid HTTP/1.1"
        body = error_body(message)
        head = b"".join(name + b": " + value + b"\r\n"
                        for name, value in self.server_state.default_headers)
        self.transport.write(
            STATUS_LINE[status] + head + b"content-type: application/json\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        self.transport.close()


class Balance:
    """Concurrent keep-alive clients spread over the workers.

    A uvicorn worker that wakes on the listening socket accepts every connection waiting
    there, and an HTTP/1.1 client keeps its connection: clients that connect at once
    (batch transform's ``MaxConcurrentTransforms`` connections) can all land on one
    worker and stay there while its siblings idle. Measured with 2 workers and 2
    clients sending 1 MB mini-batches: one worker did all the work, at half the
    throughput. (gunicorn's sync workers never meet this: they close every connection.)

    So a worker that is *crowded* when it answers (another request of its own waits,
    running or unread on one of its connections) while another worker is idle, closes this
    connection after the response (``connection: close``). The client reconnects, and
    the idle worker, the only one waiting in ``accept``, takes the connection. The
    workers' busy flags are one shared byte each, in memory the master maps before it
    forks; the master gives each new worker a free slot (:meth:`pre_fork`).

    A worker closes at most one connection per ``CLOSE_INTERVAL``: with single-row
    requests a worker is "crowded while another idles" at almost every answer, and
    closing each time cost a third of the throughput in reconnects (measured: 20k to 14k
    requests/s at 8 clients). One close per 10 ms still moves a 25 ms mini-batch client
    at its first answer.
    """

    #: Seconds between two closes by one worker.
    CLOSE_INTERVAL = 0.01

    def __init__(self, workers: int) -> None:
        self.flags = mmap.mmap(-1, workers)  # 1 while the worker in that slot runs a request
        self.slot = -1
        self.active = 0
        self.closed_at = -math.inf

    def pre_fork(self, server: Any, worker: Any) -> None:
        """In the master: the lowest slot no live worker holds (none if all are taken).
        Every worker in ``server.WORKERS`` came through here (gunicorn calls pre_fork
        before it forks and records the worker), so each has its slot."""
        taken = {other.slot for other in server.WORKERS.values()}
        free = [slot for slot in range(len(self.flags)) if slot not in taken]
        worker.slot = free[0] if free else -1
        if free:
            self.flags[free[0]] = 0  # a worker that died mid-request left its flag set

    def post_fork(self, server: Any, worker: Any) -> None:
        """In the worker: its slot."""
        self.slot = worker.slot

    def begin(self) -> None:
        self.active += 1
        if self.slot >= 0:
            self.flags[self.slot] = 1

    def end(self) -> None:
        self.active -= 1
        if not self.active and self.slot >= 0:
            self.flags[self.slot] = 0

    def should_close(self) -> bool:
        """Close the connection after this answer (see the class): another worker is idle
        while another request waits on this one, and this worker has not closed one in
        the last ``CLOSE_INTERVAL`` seconds."""
        now = time.monotonic()
        if now - self.closed_at < self.CLOSE_INTERVAL or not self.crowded():
            return False
        self.closed_at = now
        return True

    def crowded(self) -> bool:
        """Another worker is idle while another request waits on this one: a second request
        runs here (awaiting its body), or one lies unread on a connection of this worker
        (one poll of them all, no timeout)."""
        if self.slot < 0 or self.flags.find(b"\0") < 0:
            return False
        return self.active > 1 or bool(Protocol.readable.poll(0))


class Worker(UvicornWorker):
    """A uvicorn worker: uvloop (no silent fallback), :class:`Protocol`, lifespan on, the
    app's interface declared (ASGI 3), not guessed."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop", "http": Protocol, "lifespan": "on", "ws": "none",
        "interface": "asgi3", "server_header": False,
    }


def _target_user() -> pwd.struct_passwd | None:
    """``MLCONTAINER_USER`` when the workers will switch to it (as privileges decides)."""
    name = os.environ.get(privileges.USER_ENV)
    if not name or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _post_worker_init(worker: Any) -> None:
    # The worker signals it is alive by touching a file gunicorn made as root: hand it
    # to the user the worker becomes once its model is loaded.
    user = _target_user()
    if user is not None:
        os.fchown(worker.tmp.fileno(), user.pw_uid, user.pw_gid)


def _child_exit(server: Any, worker: Any) -> None:
    log(f"worker {worker.pid} exited")


def _on_exit(server: Any) -> None:
    log("stopped")


class Application(BaseApplication):
    """gunicorn, configured here rather than from its command line or files."""

    def __init__(self, cfg: ServerConfig, sock: socket.socket, files: ModelFiles) -> None:
        self.server_cfg = cfg
        self.fd = sock.detach()  # gunicorn owns the listening socket from here on
        self.balance = Balance(cfg.workers)
        self.app = App(cfg, files, self.balance)
        self.kind = files.kind
        super().__init__()

    def load_config(self) -> None:
        cfg = self.server_cfg
        settings = {
            "bind": [f"fd://{self.fd}"],
            "workers": cfg.workers,
            "worker_class": Worker,
            "timeout": math.ceil(cfg.timeout),
            "graceful_timeout": GRACEFUL_STOP_SECONDS,
            "keepalive": math.ceil(cfg.keep_alive),
            "backlog": cfg.backlog,
            "loglevel": "warning",
            "errorlog": "-",
            "proc_name": "mlcontainer-serve",
            "pre_fork": self.balance.pre_fork,
            "post_fork": self.balance.post_fork,
            "post_worker_init": _post_worker_init,
            "child_exit": _child_exit,
            "on_exit": _on_exit,
            "when_ready": lambda server: log(
                f"serving the {self.kind} model from {cfg.model_dir} on "
                f"http://{cfg.host}:{cfg.port} with {cfg.workers} worker(s)"),
        }
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no control socket
            settings["control_socket_disable"] = True
        for name, value in settings.items():
            self.cfg.set(name, value)

    def load(self) -> App:
        return self.app


def run(cfg: ServerConfig, sock: socket.socket, files: ModelFiles) -> int:
    """Serve until stopped: 0 after SIGTERM, 1 when the server could not run."""
    master = os.getpid()
    try:
        Application(cfg, sock, files).run()
    except SystemExit as stop:
        if os.getpid() != master:
            raise  # a worker leaving through the master's frames: its status is gunicorn's
        return 0 if not stop.code else 1
    return 0
