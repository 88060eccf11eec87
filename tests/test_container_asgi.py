"""The hosting routes' ASGI application (``mlcontainer.asgi.App``) driven in-process with
the messages of the ASGI specification (HTTP and lifespan scopes), as uvicorn sends them.

The lifecycle tests run the same app behind gunicorn and uvicorn with a real model; here
each path is taken on its own and its whole answer (status, headers, body) is written out:
routes and methods, the 413 before the body is read, the 408 of a stalled body, the
chunked body's limit, the handler's refusals and crashes, the balance's close, and the
lifespan's start-up and shutdown. The prediction handler is a stand-in that records its
calls (its own answers are tests/test_container_negotiation.py's and
tests/test_container_units.py's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "container"))

from mlcontainer import asgi
from mlcontainer.errors import UserError
from mlcontainer.inference import RequestError
from mlcontainer.server import ServerConfig

JSON = [(b"content-type", b"application/json")]
CLOSE = (b"connection", b"close")


class Handler:
    """The prediction handler's stand-in: records each call, answers ``answer`` or raises."""

    def __init__(self, answer: tuple[str, bytes] = ("text/csv", b"7.5\n"), error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.calls: list[tuple[bytes, str | None, str | None]] = []

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[str, bytes]:
        self.calls.append((body, content_type, accept))
        if self.error is not None:
            raise self.error
        return self.answer


class Balance:
    """``httpserver.Balance``'s stand-in: records begin/end, closes when told to."""

    def __init__(self, close: bool = False) -> None:
        self.close = close
        self.events: list[str] = []

    def begin(self) -> None:
        self.events.append("begin")

    def end(self) -> None:
        self.events.append("end")

    def should_close(self) -> bool:
        self.events.append("should_close")
        return self.close


def make_app(handler: Handler | None = None, balance: Any = None, **settings: Any) -> asgi.App:
    cfg = dataclasses.replace(ServerConfig.from_env({"MAX_REQUEST_BYTES": "2048"}), **settings)
    app = asgi.App(cfg, None, balance)
    app.handler = handler or Handler()
    app.request_error = RequestError
    app.parameters = b'{"MaxConcurrentTransforms": 2}'
    return app


def http(app: asgi.App, method: str, path: str, chunks: list[bytes] | None = None,
         headers: list[tuple[bytes, bytes]] | None = None, stall: bool = False) -> tuple[list[dict], int]:
    """Run one HTTP request through the app: the messages it sent, and how many body
    messages it received (``stall``: the body never arrives)."""
    chunks = chunks or [b""]
    incoming = [{"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
                for n, chunk in enumerate(chunks)]
    received = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal received
        if stall:
            await asyncio.sleep(3600)
        received += 1
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or []}
    asyncio.run(app(scope, receive, send))
    return sent, received


def answer(sent: list[dict]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    start, body = sent
    assert start["type"] == "http.response.start"
    assert body["type"] == "http.response.body"
    assert "more_body" not in body
    return start["status"], start["headers"], body["body"]


def error(status: int, message: str, *extra: tuple[bytes, bytes]) -> tuple[int, list, bytes]:
    body = json.dumps({"message": message}).encode() + b"\n"
    return status, [*JSON, (b"content-length", b"%d" % len(body)), *extra], body


# --- routes ----------------------------------------------------------------------------------

NO_ROUTE = "; use GET /ping or POST /invocations"


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/ping", (200, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0")], b"")),
    ("HEAD", "/ping", (200, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"0")], b"")),
    ("POST", "/ping", error(405, "use GET /ping", (b"allow", b"GET, HEAD"))),
    ("PUT", "/ping", error(405, "use GET /ping", (b"allow", b"GET, HEAD"))),
    ("GET", "/invocations", error(405, "use POST /invocations", (b"allow", b"POST"))),
    ("HEAD", "/invocations", error(405, "use POST /invocations", (b"allow", b"POST"))),
    ("GET", "/execution-parameters",
     (200, [*JSON, (b"content-length", b"30")], b'{"MaxConcurrentTransforms": 2}')),
    ("POST", "/execution-parameters", error(404, "no route POST /execution-parameters" + NO_ROUTE)),
    ("GET", "/", error(404, "no route GET /" + NO_ROUTE)),
    ("POST", "/invocations/", error(404, "no route POST /invocations/" + NO_ROUTE)),
    ("GET", "/PING", error(404, "no route GET /PING" + NO_ROUTE)),
])
def test_each_route_and_method_gets_its_whole_answer(method: str, path: str, expected: tuple) -> None:
    handler, balance = Handler(), Balance()
    sent, received = http(make_app(handler, balance), method, path)
    assert answer(sent) == expected
    # Only POST /invocations reads the body, runs the handler and counts as a request.
    assert (received, handler.calls, balance.events) == (0, [], [])


def test_an_unknown_scope_type_is_left_unanswered() -> None:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        raise AssertionError("nothing is read")

    asyncio.run(make_app()({"type": "websocket", "path": "/ping"}, receive, send))
    assert sent == []


# --- POST /invocations -------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "content_type"), [("text/csv", b"text/csv"),
                                                    ("application/json", b"application/json")])
def test_a_prediction_is_answered_with_its_type_and_length(kind: str, content_type: bytes) -> None:
    handler, balance = Handler(answer=(kind, b"[7.5]")), Balance()
    headers = [(b"host", b"x"), (b"content-type", b"text/csv; charset=latin-1"),
               (b"accept", b"application/json;q=0.5, text/\xe9"), (b"content-length", b"6")]
    sent, received = http(make_app(handler, balance), "POST", "/invocations", [b"M,1,2\n"], headers)
    assert answer(sent) == (200, [(b"content-type", content_type), (b"content-length", b"5")], b"[7.5]")
    assert received == 1
    # Header values reach the handler as latin-1 text, as HTTP/1.1 carries them.
    assert handler.calls == [(b"M,1,2\n", "text/csv; charset=latin-1", "application/json;q=0.5, text/\xe9")]
    assert balance.events == ["begin", "should_close", "end"]


def test_without_content_type_or_accept_the_handler_gets_none() -> None:
    handler = Handler()
    http(make_app(handler), "POST", "/invocations", [b"row"])
    assert handler.calls == [(b"row", None, None)]


def test_a_crowded_worker_closes_the_connection_after_its_answer() -> None:
    sent, _ = http(make_app(Handler(), Balance(close=True)), "POST", "/invocations", [b"row"])
    assert answer(sent) == (200, [(b"content-type", b"text/csv"), (b"content-length", b"4"), CLOSE], b"7.5\n")


def test_a_lone_app_never_closes_a_connection() -> None:
    app = make_app(Handler())
    assert isinstance(app.balance, asgi.Unbalanced)
    assert (app.balance.begin(), app.balance.end(), app.balance.should_close()) == (None, None, False)
    sent, _ = http(app, "POST", "/invocations", [b"row"])
    assert answer(sent)[1] == [(b"content-type", b"text/csv"), (b"content-length", b"4")]


@pytest.mark.parametrize(("declared", "refused"), [(2048, False), (2049, True), (10**12, True)])
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
        declared: int, refused: bool, capsys: pytest.CaptureFixture[str]) -> None:
    handler, balance = Handler(), Balance()
    sent, received = http(make_app(handler, balance), "POST", "/invocations", [b"row"],
                          [(b"content-length", str(declared).encode())])
    if refused:
        assert answer(sent) == error(413, "request body exceeds 2048 bytes (MAX_REQUEST_BYTES)", CLOSE)
        assert (received, handler.calls) == (0, [])
        # The operator's log line says how big the refused body was.
        assert f"413: body of {declared} bytes refused" in capsys.readouterr().err
    else:
        assert answer(sent)[0] == 200
        assert received == 1
    assert balance.events[0::len(balance.events) - 1] == ["begin", "end"]


@pytest.mark.parametrize(("chunks", "refused"), [
    ([b"a" * 1000, b"b" * 1000, b"c" * 48], False),  # 2048 bytes: the limit itself
    ([b"a" * 1000, b"b" * 1000, b"c" * 49], True),
    ([b"a" * 2049, b""], True),
    ([b"", b"a", b"", b"b"], False),
])
def test_a_chunked_body_is_joined_or_refused_once_it_passes_the_limit(
        chunks: list[bytes], refused: bool, capsys: pytest.CaptureFixture[str]) -> None:
    handler = Handler()
    sent, received = http(make_app(handler), "POST", "/invocations", chunks)
    if refused:
        assert answer(sent) == error(413, "request body exceeds 2048 bytes (MAX_REQUEST_BYTES)", CLOSE)
        assert "413: body of over 2048 bytes (chunked) refused" in capsys.readouterr().err
        assert handler.calls == []
        assert received == len(chunks)  # refused at the chunk that passed the limit
    else:
        assert answer(sent)[0] == 200
        assert handler.calls[0][0] == b"".join(chunks)


@pytest.mark.parametrize(("messages", "body"), [
    ([{"type": "http.request"}], b""),
    ([{"type": "http.request", "body": b"M,1", "more_body": True}, {"type": "http.request"}], b"M,1"),
    ([{"type": "http.request", "more_body": True}, {"type": "http.request", "body": b"M,1"}], b"M,1"),
])
def test_a_body_message_without_a_body_adds_nothing(messages: list[dict], body: bytes) -> None:
    # ASGI: "body" is optional and defaults to b"", "more_body" to False.
    handler = Handler()
    app = make_app(handler)

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": []}
    asyncio.run(app(scope, receive, send))
    assert handler.calls == [(body, None, None)]
    assert messages == []


def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes(capsys: pytest.CaptureFixture[str]) -> None:
    handler, balance = Handler(), Balance()
    sent, _ = http(make_app(handler, balance, timeout=0.25), "POST", "/invocations", stall=True)
    assert answer(sent) == error(408, "request not received in full within 0.25 s", CLOSE)
    assert handler.calls == []
    assert balance.events == ["begin", "end"]
    assert "408: request not received in full within 0.25 s" in capsys.readouterr().err


@pytest.mark.parametrize("status", [400, 406, 413, 415])
def test_the_handlers_refusal_is_answered_with_its_status_and_message(status: int, capsys: pytest.CaptureFixture[str]) -> None:
    balance = Balance(close=True)
    sent, _ = http(make_app(Handler(error=RequestError(status, "row 1: bad")), balance),
                   "POST", "/invocations", [b"row"])
    assert answer(sent) == error(status, "row 1: bad")  # no close: the client did nothing wrong twice
    assert balance.events == ["begin", "end"]
    assert capsys.readouterr().err == ""  # a client's mistake is its answer, not a log line


def test_a_crash_in_the_handler_is_a_500_and_the_traceback_is_logged(capsys: pytest.CaptureFixture[str]) -> None:
    balance = Balance()
    sent, _ = http(make_app(Handler(error=ZeroDivisionError("boom")), balance), "POST", "/invocations", [b"row"])
    assert answer(sent) == error(500, "internal error while predicting; see the server log")
    assert balance.events == ["begin", "end"]
    err = capsys.readouterr().err
    assert "internal error on /invocations:\nTraceback (most recent call last):" in err
    assert "ZeroDivisionError: boom" in err
    assert "500: internal error while predicting; see the server log" in err


def test_an_error_body_is_ascii_json_whatever_the_message_quotes() -> None:
    assert asgi.error_body('row "é" \udcff') == b'{"message": "row \\"\\u00e9\\" \\udcff"}\n'


# --- lifespan ----------------------------------------------------------------------------------


def lifespan(app: asgi.App, *messages: str) -> list[dict]:
    incoming = [{"type": m} for m in messages]
    sent: list[dict] = []

    async def receive() -> dict:
        return incoming.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert incoming == []  # the app read exactly the messages it had to
    return sent


def test_startup_loads_the_model_then_shutdown_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    app, loads = make_app(), []
    monkeypatch.setattr(app, "load", lambda: loads.append(1))
    assert lifespan(app, "lifespan.startup", "lifespan.shutdown") == [
        {"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert loads == [1]


@pytest.mark.parametrize(("err", "logged"), [
    (UserError("model.tar.gz holds no model"), "cannot load the model: model.tar.gz holds no model\n"),
    (KeyError("trees"), "cannot load the model:\nTraceback (most recent call last):"),
])
def test_a_model_that_cannot_load_fails_the_startup_with_its_reason(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], err: Exception, logged: str) -> None:
    app = make_app()

    def load() -> None:
        raise err

    monkeypatch.setattr(app, "load", load)
    # The app stops reading after the failure: the server shuts the worker down.
    assert lifespan(app, "lifespan.startup") == [{"type": "lifespan.startup.failed", "message": str(err)}]
    text = capsys.readouterr().err
    assert logged in text
    assert ("Traceback" in text) is not isinstance(err, UserError)  # a user's error is said in one line


# --- error answers: cut and logged -----------------------------------------------------------


def _sent(coroutine_of_send) -> list[dict]:
    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    asyncio.run(coroutine_of_send(send))
    return messages


@pytest.mark.parametrize(("length", "answered"), [(999, 999), (1000, 1000), (1001, 1003)])
def test_an_error_message_is_cut_after_1000_characters(length: int, answered: int) -> None:
    """Messages may quote the request: over MAX_ERROR_CHARS (1000) they are cut, marked "..."."""
    app = asgi.App(ServerConfig.from_env({}), None)
    message = "m" * length
    start, body = _sent(lambda send: app.error(send, 400, message))
    assert start["status"] == 400
    text = json.loads(body["body"])["message"]
    assert len(text) == answered
    assert text == (message if length <= 1000 else "m" * 1000 + "...")


@pytest.mark.parametrize(("status", "logged"), [(400, False), (404, False), (413, False), (499, False),
                                                (408, True), (500, True), (503, True)])
def test_server_errors_and_timeouts_are_logged_client_errors_are_not(
        capsys: pytest.CaptureFixture[str], status: int, logged: bool) -> None:
    """A 5xx (our fault) and a 408 (a stalled client, or a network problem) are logged with
    their message; a 4xx is the client's answer only (a bad row logged per request would
    flood the logs, and may hold data)."""
    app = asgi.App(ServerConfig.from_env({}), None)
    _sent(lambda send: app.error(send, status, "the reason"))
    err = capsys.readouterr().err
    assert (f"{status}: the reason" in err) is logged
    assert bool(err) is logged
