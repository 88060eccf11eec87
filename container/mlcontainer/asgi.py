"""The hosting routes as a bare ASGI application (no framework), served by gunicorn with
uvicorn workers (:mod:`mlcontainer.server`).

* ``GET /ping`` (and ``HEAD``) answers 200 once the worker holds the loaded model: a
  worker loads it at the ASGI ``lifespan`` start-up, before it accepts a connection.
* ``POST /invocations`` is described in :mod:`mlcontainer.inference`.
* ``GET /execution-parameters`` tells batch transform the limits.
* Bodies over ``MAX_REQUEST_BYTES`` get 413 before they are read; a body that does not
  arrive in full within ``MODEL_SERVER_TIMEOUT`` seconds gets 408.
* Every error is a JSON body, ``{"message": "<one line>"}``, with its 4xx (or 500) status.

At start-up a worker builds the predictor from the model files the master read (as root,
before forking), predicts once on each path so every lazy import and first-call set-up
happens then, and only then drops root (``MLCONTAINER_USER``): after the drop it imports
nothing and reads nothing from disk.

Module-level imports are stdlib only: the master imports this module before it forks.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import traceback
from collections.abc import Coroutine
from typing import Any

from mlcontainer import privileges
from mlcontainer.errors import UserError
from mlcontainer.model import ModelFiles

#: Error messages are cut to this many characters (they may quote the request).
MAX_ERROR_CHARS = 1000
WARMUP_ROW = b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_CSV_HEAD = [(b"content-type", b"text/csv")]
_JSON_HEAD = [(b"content-type", _JSON)]
_CLOSE = [(b"connection", b"close")]


def log(message: str) -> None:
    print(f"[{os.getpid()}] {message}", file=sys.stderr, flush=True)


def error_body(message: str) -> bytes:
    """``{"message": ...}``: ASCII whatever the message quotes (lone surrogates included)."""
    return json.dumps({"message": message}).encode("ascii") + b"\n"


class Unbalanced:
    """The balance of a lone app (no gunicorn workers to spread clients over): it never
    asks to close a connection. ``httpserver.Balance`` is the workers' one."""

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def should_close(self) -> bool:
        return False


class App:
    """The ASGI application of one worker; ``cfg`` is a ``server.ServerConfig``."""

    def __init__(self, cfg: Any, files: ModelFiles | None, balance: Any = None) -> None:
        self.cfg = cfg
        self.files = files
        #: ``httpserver.Balance``: told when a request runs, asked whether to close after it
        self.balance = Unbalanced() if balance is None else balance
        self.handler: Any = None
        self.request_error: type = Exception
        self.parameters = b""

    def load(self) -> None:
        """Build the predictor, run each path once, then drop root. Raises on failure."""
        # One thread per worker: the workers already use every CPU.
        os.environ["OMP_NUM_THREADS"] = "1"
        from mlcontainer.inference import (
            InvocationHandler,
            RequestError,
            execution_parameters,
        )
        from mlcontainer.model import Predictor

        handler = InvocationHandler(Predictor.from_files(self.files, nthread=1))
        # Both prediction paths and both answer formats once: first-call set-up (and any
        # lazy import) happens here, off the request path and before root is dropped.
        handler(WARMUP_ROW, "text/csv", None)
        handler(b"\n".join([WARMUP_ROW] * 100), "text/csv", "application/json")
        self.parameters = json.dumps(
            execution_parameters(self.cfg.workers, self.cfg.max_bytes)).encode()
        self.request_error = RequestError
        self.handler = handler
        privileges.drop_for_server()
        # Everything allocated so far lives as long as the worker: keep it out of the
        # cyclic collector's full passes, which otherwise walk it again and again.
        gc.collect()
        gc.freeze()

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Coroutine[Any, Any, None]:
        # A plain method returning the coroutine (the worker declares ASGI 3): uvicorn calls
        # the app once with no arguments to detect an app factory, and this must raise
        # TypeError there even when the method is wrapped (as mutation testing wraps it).
        return self.dispatch(scope, receive, send)

    async def dispatch(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.load()
                except Exception as err:  # noqa: BLE001 - said, and the server stops
                    log(f"cannot load the model: {err}" if isinstance(err, UserError)
                        else "cannot load the model:\n" + traceback.format_exc())
                    await send({"type": "lifespan.startup.failed", "message": str(err)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        method = scope["method"]
        if path == "/invocations":
            if method != "POST":
                await self.error(send, 405, "use POST /invocations", [(b"allow", b"POST")])
                return
            self.balance.begin()
            try:
                await self.invoke(scope, receive, send)
            finally:
                self.balance.end()
        elif path == "/ping":
            if method not in ("GET", "HEAD"):
                await self.error(send, 405, "use GET /ping", [(b"allow", b"GET, HEAD")])
                return
            await self.send(send, 200, _TEXT, b"")
        elif path == "/execution-parameters" and method == "GET":
            await self.send(send, 200, _JSON, self.parameters)
        else:
            await self.error(send, 404, f"no route {method} {path}; use GET /ping or "
                                        "POST /invocations")

    async def invoke(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        content_type = accept = None
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"content-length":
                declared = int(value)  # the parser has checked it is a number
        limit = self.cfg.max_bytes
        if declared > limit:
            await self.oversize(send, f"{declared} bytes")
            return
        try:
            async with asyncio.timeout(self.cfg.timeout):
                body = await self.read_body(receive, limit)
        except TimeoutError:
            await self.error(send, 408, "request not received in full within "
                                        f"{self.cfg.timeout:g} s", _CLOSE)
            return
        if body is None:
            await self.oversize(send, f"over {limit} bytes (chunked)")
            return
        try:
            kind, answer = self.handler(body, content_type, accept)
        except self.request_error as err:
            await self.error(send, err.status, err.message)
            return
        except Exception:  # noqa: BLE001 - one bad request must not take the worker down
            log("internal error on /invocations:\n" + traceback.format_exc())
            await self.error(send, 500, "internal error while predicting; see the server log")
            return
        headers = (_CSV_HEAD if kind == "text/csv" else _JSON_HEAD) + [
            (b"content-length", b"%d" % len(answer))]
        if self.balance.should_close():
            headers += _CLOSE  # the client reconnects to an idle worker
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    @staticmethod
    async def read_body(receive: Any, limit: int) -> bytes | None:
        """The whole body, or None once it grows past ``limit`` bytes."""
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return None
        return b"".join(chunks)

    async def oversize(self, send: Any, size: str) -> None:
        log(f"413: body of {size} refused")
        await self.error(send, 413, f"request body exceeds {self.cfg.max_bytes} bytes "
                                    "(MAX_REQUEST_BYTES)", _CLOSE)

    async def error(self, send: Any, status: int, message: str,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + "..."
        if status >= 500 or status == 408:
            log(f"{status}: {message}")
        await self.send(send, status, _JSON, error_body(message), extra)

    @staticmethod
    async def send(send: Any, status: int, content_type: bytes, body: bytes,
                   extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status,
                    "headers": headers + (extra or [])})
        await send({"type": "http.response.body", "body": body})
