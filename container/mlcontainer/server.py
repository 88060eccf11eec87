"""``serve``: the SageMaker hosting contract on a lean pre-fork HTTP server.

``GET /ping`` answers 200 once a worker holds the loaded model (a worker loads it before
it accepts a connection, and a model that does not load stops the server with its
reason). ``POST /invocations`` is described in :mod:`mlcontainer.inference`;
``GET /execution-parameters`` tells batch transform the limits.

Design, for single-row latency and throughput:

* The master binds one listening socket, reads the model files and forks
  ``MODEL_SERVER_WORKERS`` workers (default: the CPUs it may use); each worker loads the
  model, imports all it runs and drops root (``MLCONTAINER_USER``) before it accepts a
  connection. The master first checks, as that user, that the code is readable; a worker
  that cannot start stops the server with the reason (restarting it would fail again).
  It restarts a worker that dies once started, kills one stuck on a request longer than
  ``MODEL_SERVER_TIMEOUT`` seconds (shared-memory heartbeat), and passes SIGTERM on for
  a graceful stop.
* Each worker is one process with one event loop (uvloop when installed) and the
  ``httptools`` C parser: no WSGI/ASGI layers, no proxy hop, no thread pool. Requests
  are answered in order on each keep-alive connection; prediction (XGBoost
  ``inplace_predict`` on a NumPy array, one thread per worker) runs inline because it
  takes microseconds.
* Bodies over ``MAX_REQUEST_BYTES`` (default 6 MiB, the SageMaker real-time payload
  limit) get 413 before they are read; headers over 64 KiB get 431; a request that stays
  incomplete for ``MODEL_SERVER_TIMEOUT`` seconds gets 408; idle keep-alive connections
  close after ``MODEL_SERVER_KEEP_ALIVE`` seconds.
* Every error is a JSON body, ``{"message": "<one line>"}``, with its 4xx (or 500) status.

Module-level imports are stdlib only, so the master never starts a thread before fork.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import mmap
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any, NoReturn

from mlcontainer import paths, privileges
from mlcontainer.errors import UserError
from mlcontainer.model import ModelFiles, cpu_count, read_model_files

#: A worker exits with this status when it cannot start (the model does not load, the
#: event loop cannot be set up): retrying is useless, so the server stops.
EXIT_STARTUP = 3
MAX_HEADER_BYTES = 64 * 1024
GRACEFUL_STOP_SECONDS = 10.0
WARMUP_ROW = b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"


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


def log(message: str) -> None:
    print(f"[{os.getpid()}] {message}", file=sys.stderr, flush=True)


# --- worker: one event loop, one HTTP/1.1 protocol instance per connection ----------------

_REASONS = {
    200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
    406: b"Not Acceptable", 408: b"Request Timeout", 413: b"Content Too Large",
    415: b"Unsupported Media Type", 431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 503: b"Service Unavailable",
}
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
#: Error messages are cut to this many characters (they may quote the request).
MAX_ERROR_CHARS = 1000
_CLOSE = b"Connection: close\r\n"
_KEEP = b"Connection: keep-alive\r\n"


class _Abort(Exception):
    """Stops the parser after an answer that ends the connection was sent."""


def error_body(message: str) -> bytes:
    """``{"message": ...}``: ASCII whatever the message quotes (lone surrogates included)."""
    return json.dumps({"message": message}).encode("ascii") + b"\n"


class Worker:
    """State shared by a worker's connections."""

    def __init__(self, handler: Any, cfg: ServerConfig, heartbeat: memoryview, slot: int,
                 request_error: type) -> None:
        self.handler = handler
        self.cfg = cfg
        self.heartbeat = heartbeat
        self.slot = slot
        self.request_error = request_error
        self.connections: set[HttpProtocol] = set()
        self.parent = os.getppid()
        self.stopping = False
        self.server: Any = None
        self.loop: Any = None
        self._refresh_date()

    def _refresh_date(self) -> None:
        self.date_line = b"Date: " + formatdate(usegmt=True).encode() + b"\r\n"
        self.ok_csv = (b"HTTP/1.1 200 OK\r\n" + self.date_line
                       + b"Content-Type: text/csv\r\nContent-Length: ")
        self.ok_json = (b"HTTP/1.1 200 OK\r\n" + self.date_line
                        + b"Content-Type: application/json\r\nContent-Length: ")

    def sweep(self) -> None:
        """Once a second: the Date header, connection timeouts, an orphaned worker."""
        self._refresh_date()
        if os.getppid() != self.parent:
            log("master is gone; stopping")
            self.stop()
        now = time.monotonic()
        for connection in list(self.connections):
            connection.check_timeouts(now)
        if self.stopping and not self.connections:
            self.loop.stop()
            return
        self.loop.call_later(1.0 if not self.stopping else 0.1, self.sweep)

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.close_if_idle()
        self.loop.call_later(GRACEFUL_STOP_SECONDS, self.loop.stop)
        self.loop.call_soon(self.sweep)


class HttpProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection (asyncio protocol + httptools callbacks)."""

    __slots__ = (
        "accept",
        "body",
        "content_type",
        "declared",
        "discarded",
        "expect",
        "header_bytes",
        "headers_done",
        "http10",
        "in_request",
        "last_seen",
        "lingering",
        "parser",
        "size",
        "started",
        "transport",
        "url",
        "worker",
    )

    def __init__(self, worker: Worker) -> None:
        import httptools

        self.worker = worker
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.in_request = False
        self.lingering = False
        self.discarded = 0
        self.declared = 0
        self.size = 0
        self.body: list[bytes] = []
        self.url = b""
        self.content_type: str | None = None
        self.accept: str | None = None
        self.expect = False
        self.http10 = False
        self.headers_done = False
        self.header_bytes = 0
        self.last_seen = time.monotonic()
        self.started = self.last_seen

    # asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.worker.connections.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.worker.connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        # A client that does not read its answers stops being read from.
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False

    def data_received(self, data: bytes) -> None:
        import httptools

        self.last_seen = time.monotonic()
        if self.lingering:
            self.discarded += len(data)
            if self.discarded >= self.declared:
                self.transport.close()
            return
        if not self.headers_done:
            end = data.find(b"\r\n\r\n")
            self.header_bytes += len(data) if end < 0 else end + 4
            if self.header_bytes > MAX_HEADER_BYTES:
                self.send_error(431, f"request headers exceed {MAX_HEADER_BYTES} bytes",
                                close=True)
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as err:
            if not isinstance(err.__context__, _Abort):
                # A bug in a callback: answer it rather than drop the connection unanswered.
                log("internal error in a request callback:\n" + "".join(
                    traceback.format_exception(err.__context__ or err)))
                self.send_error(500, "internal error; see the server log", close=True)
            return
        except httptools.HttpParserUpgrade:
            self.send_error(400, "protocol upgrades are not supported", close=True)
            return
        except httptools.HttpParserError as err:
            if self.transport is not None and not self.transport.is_closing():
                reason = str(err) or type(err).__name__
                self.send_error(400, f"malformed HTTP request: {reason}", close=True)
            return

    # httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.transport is None or self.transport.is_closing():
            raise _Abort  # pipelined requests after a closing answer are dropped
        self.in_request = True
        self.started = time.monotonic()
        self.url = b""
        self.content_type = None
        self.accept = None
        self.expect = False
        self.body = []
        self.size = 0
        self.declared = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value.decode("latin-1")
        elif name == b"accept":
            self.accept = value.decode("latin-1")
        elif name == b"content-length":
            try:
                self.declared = int(value)
            except ValueError:
                self.declared = 0  # the parser rejects it right after
        elif name == b"expect" and value.lower() == b"100-continue":
            self.expect = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.declared > self.worker.cfg.max_bytes:
            self.reject_oversize()
        if self.expect:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.worker.cfg.max_bytes:
            self.reject_oversize()
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.in_request = False
        self.headers_done = False
        self.header_bytes = 0
        worker = self.worker
        parser = self.parser
        keep_alive = parser.should_keep_alive() and not worker.stopping
        self.http10 = parser.get_http_version() == "1.0"
        url = self.url
        path = url.split(b"?", 1)[0] if b"?" in url else url
        method = parser.get_method()
        if path == b"/invocations":
            if method != b"POST":
                self.send_error(405, "use POST /invocations", close=not keep_alive,
                                extra=b"Allow: POST\r\n")
                return
            self.invoke(keep_alive)
        elif path == b"/ping":
            if method not in (b"GET", b"HEAD"):
                self.send_error(405, "use GET /ping", close=not keep_alive,
                                extra=b"Allow: GET, HEAD\r\n")
                return
            self.send(200, _TEXT, b"", keep_alive)
        elif path == b"/execution-parameters" and method == b"GET":
            import json

            from mlcontainer.inference import execution_parameters

            body = json.dumps(execution_parameters(worker.cfg.workers, worker.cfg.max_bytes))
            self.send(200, b"application/json", body.encode(), keep_alive)
        else:
            self.send_error(404, f"no route {method.decode()} {path.decode('latin-1')}; "
                                 "use GET /ping or POST /invocations", close=not keep_alive)

    # answers --------------------------------------------------------------------------
    def invoke(self, keep_alive: bool) -> None:
        worker = self.worker
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body = []
        worker.heartbeat[worker.slot] = time.monotonic()
        try:
            kind, answer = worker.handler(body, self.content_type, self.accept)
        except worker.request_error as err:
            self.send_error(err.status, err.message, close=not keep_alive)
            return
        except Exception:  # noqa: BLE001 - one bad request must not take the worker down
            log("internal error on /invocations:\n" + traceback.format_exc())
            self.send_error(500, "internal error while predicting; see the server log",
                            close=not keep_alive)
            return
        finally:
            worker.heartbeat[worker.slot] = 0.0
        head = worker.ok_csv if kind == "text/csv" else worker.ok_json
        tail = b"\r\n\r\n" if keep_alive and not self.http10 else (
            b"\r\n" + (_KEEP if keep_alive else _CLOSE) + b"\r\n")
        self.transport.write(head + str(len(answer)).encode() + tail + answer)
        if not keep_alive:
            self.transport.close()

    def send(self, status: int, content_type: bytes, body: bytes, keep_alive: bool,
             extra: bytes = b"") -> None:
        if self.transport is None:
            return
        connection = b"" if keep_alive and not self.http10 else (
            _KEEP if keep_alive else _CLOSE)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
                status, _REASONS.get(status, b"Error"), self.worker.date_line, content_type,
                len(body), connection, extra, body))
        if not keep_alive:
            self.transport.close()

    def send_error(self, status: int, message: str, *, close: bool, extra: bytes = b"") -> None:
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + "..."
        if status >= 500 or status in (408, 413, 431):
            log(f"{status}: {message}")
        self.send(status, _JSON, error_body(message), not close, extra)

    def reject_oversize(self) -> None:
        """413, then read and drop what the client still sends so it sees the answer."""
        limit = self.worker.cfg.max_bytes
        self.send(413, _JSON, error_body(f"request body exceeds {limit} bytes (MAX_REQUEST_BYTES)"),
                  keep_alive=True, extra=_CLOSE)
        log(f"413: body of {max(self.declared, self.size)} bytes refused")
        self.lingering = True
        self.discarded = self.size
        self.declared = max(self.declared, limit)
        self.body = []
        self.started = time.monotonic()
        raise _Abort

    # timeouts ---------------------------------------------------------------------------
    def check_timeouts(self, now: float) -> None:
        if self.transport is None:
            return
        if self.lingering:
            if now - self.started > 5.0:
                self.transport.close()
        elif self.in_request:
            if now - self.started > self.worker.cfg.timeout:
                self.send_error(408, "request not received in full within "
                                f"{self.worker.cfg.timeout:g} s", close=True)
        elif now - self.last_seen > self.worker.cfg.keep_alive or self.worker.stopping:
            self.transport.close()

    def close_if_idle(self) -> None:
        if self.transport is not None and not self.in_request:
            self.transport.close()


def _new_loop() -> Any:
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - the image installs it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_worker(sock: socket.socket, files: ModelFiles, cfg: ServerConfig,
               heartbeat: memoryview, slot: int, started: memoryview | None = None) -> NoReturn:
    """A forked worker: load the model, then serve until SIGTERM.

    Exits with :data:`EXIT_STARTUP`, after logging why, when it cannot start. Sets
    ``started[slot]`` once it is about to serve."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the master, which stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # One thread per worker: the workers already use every CPU.
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        from mlcontainer.inference import InvocationHandler, RequestError
        from mlcontainer.model import Predictor

        handler = InvocationHandler(Predictor.from_files(files, nthread=1))
        # Both prediction paths and both answer formats once: first-call setup (and any
        # lazy import) happens here, off the request path and before root is dropped.
        handler(WARMUP_ROW, "text/csv", None)
        handler(b"\n".join([WARMUP_ROW] * 100), "text/csv", "application/json")
    except UserError as err:
        log(f"cannot load the model: {err}")
        os._exit(EXIT_STARTUP)
    except Exception:  # noqa: BLE001
        log("cannot load the model:\n" + traceback.format_exc())
        os._exit(EXIT_STARTUP)
    try:
        # Everything the worker runs is imported, and its loop and server made, before root
        # is dropped: after the drop nothing needs to be read from disk. (An import that
        # failed there once hung the server: uvloop fell back to asyncio unseen, and a
        # protocol factory failing on ``import httptools`` makes asyncio drop every
        # connection without a word.)
        import httptools  # noqa: F401 - HttpProtocol imports it from sys.modules

        loop = _new_loop()
        worker = Worker(handler, cfg, heartbeat, slot, RequestError)
        worker.loop = loop
        worker.server = loop.run_until_complete(
            loop.create_server(lambda: HttpProtocol(worker), sock=sock, backlog=cfg.backlog))
        loop.add_signal_handler(signal.SIGTERM, worker.stop)
        loop.call_later(1.0, worker.sweep)
        privileges.drop_for_server()
        # Everything allocated so far lives as long as the worker: keep it out of the
        # cyclic collector's full passes, which otherwise walk it again and again.
        gc.collect()
        gc.freeze()
    except Exception:  # noqa: BLE001
        log("cannot start the worker:\n" + traceback.format_exc())
        os._exit(EXIT_STARTUP)

    if started is not None:
        started[slot] = 1.0
    try:
        loop.run_forever()
    except Exception:  # noqa: BLE001 - exit status tells the master to restart us
        log("worker loop failed:\n" + traceback.format_exc())
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)


# --- master -------------------------------------------------------------------------------

class Master:
    """Forks the workers, keeps their number up, stops them on SIGTERM/SIGINT."""

    def __init__(self, cfg: ServerConfig, sock: socket.socket, files: ModelFiles) -> None:
        self.cfg = cfg
        self.sock = sock
        self.files = files
        self.workers: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        self.exit_code = 0
        self.restarts: deque[float] = deque()
        # Per slot, shared with the workers: when the current request began (0: idle), and
        # whether the worker got as far as serving (1.0) or is still starting (0.0).
        self.shared = mmap.mmap(-1, 2 * 8 * cfg.workers)
        shared = memoryview(self.shared).cast("d")
        self.heartbeat = shared[:cfg.workers]
        self.started = shared[cfg.workers:]

    def spawn(self, slot: int) -> None:
        self.heartbeat[slot] = 0.0
        self.started[slot] = 0.0
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                signal.set_wakeup_fd(-1)
                os.close(self.wake_read)
                os.close(self.wake_write)
                run_worker(self.sock, self.files, self.cfg, self.heartbeat, slot, self.started)
            except BaseException:  # noqa: BLE001 - said, not swallowed
                log("worker failed:\n" + traceback.format_exc())
            finally:
                os._exit(1)
        self.workers[pid] = slot

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True

    def reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.workers.pop(pid, None)
            if slot is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            if code == EXIT_STARTUP or not self.started[slot]:
                # A worker that cannot start would fail the same way again: stop, saying why.
                why = "see above" if code == EXIT_STARTUP else (
                    f"killed by signal {-code}" if code < 0 else f"exit status {code}")
                log(f"worker {pid} could not start ({why}); stopping")
                self.stopping = True
                self.exit_code = 1
                continue
            log(f"worker {pid} exited with status {code}; starting a new one")
            now = time.monotonic()
            self.restarts.append(now)
            while self.restarts and now - self.restarts[0] > 60:
                self.restarts.popleft()
            if len(self.restarts) > 5 * self.cfg.workers:
                log(f"{len(self.restarts)} worker restarts within a minute; stopping")
                self.stopping = True
                self.exit_code = 1

    def watchdog(self) -> None:
        now = time.monotonic()
        for pid, slot in list(self.workers.items()):
            since = self.heartbeat[slot]
            if since and now - since > self.cfg.timeout:
                log(f"worker {pid} spent over {self.cfg.timeout:g} s (MODEL_SERVER_TIMEOUT) on "
                    "one request; restarting it")
                self.heartbeat[slot] = 0.0
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def run(self) -> int:
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        for slot in range(self.cfg.workers):
            self.spawn(slot)
        cfg = self.cfg
        log(f"serving the {self.files.kind} model from {cfg.model_dir} on "
            f"http://{cfg.host}:{cfg.port} with {cfg.workers} worker(s)")
        while not self.stopping:
            try:
                select.select([self.wake_read], [], [], 1.0)
                while os.read(self.wake_read, 512):
                    pass
            except BlockingIOError:
                pass
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                pass
            self.reap()
            if self.stopping:
                break
            self.watchdog()
            busy = set(self.workers.values())
            for slot in range(cfg.workers):
                if slot not in busy:
                    self.spawn(slot)
        self.shutdown()
        return self.exit_code

    def shutdown(self) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + GRACEFUL_STOP_SECONDS + 2
        while self.workers and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.workers.pop(pid, None)
            else:
                time.sleep(0.02)
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        log("stopped")


def bind(cfg: ServerConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    try:
        sock = socket.create_server((cfg.host, cfg.port), family=family, backlog=cfg.backlog)
    except OSError as err:
        hint = " (port in use)" if err.errno == errno.EADDRINUSE else ""
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port}: {err.strerror}{hint}") from None
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
    return Master(cfg, sock, files).run()
