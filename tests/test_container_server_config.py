"""``serve``'s configuration from the environment, each setting at its bounds, and the
listening socket: what an endpoint's environment may set, and the exact refusal (the
server stops before any worker starts, and the message is what CloudWatch shows).

Defaults and limits are written out here (SageMaker's 6 MiB real-time payload limit,
port 8080 of the hosting contract), not read from ``server``.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))

from mlcontainer import model, server
from mlcontainer.errors import UserError
from mlcontainer.server import ServerConfig


def test_an_empty_environment_gives_the_hosting_contracts_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_MODEL_DIR", "/srv/model")
    cfg = ServerConfig.from_env({"MODEL_SERVER_HOST": "  ", "MODEL_SERVER_WORKERS": " "})
    assert cfg == ServerConfig(host="0.0.0.0", port=8080, workers=model.cpu_count(), timeout=60.0,
                               keep_alive=75.0, max_bytes=6 * 1024 * 1024, model_dir=Path("/srv/model"),
                               backlog=2048)
    assert (type(cfg.port), type(cfg.workers), type(cfg.max_bytes)) == (int, int, int)
    assert (type(cfg.timeout), type(cfg.keep_alive)) == (float, float)


def test_set_values_are_read_stripped_and_typed() -> None:
    cfg = ServerConfig.from_env({
        "MODEL_SERVER_HOST": " :: ", "SAGEMAKER_BIND_TO_PORT": " 9000 ", "MODEL_SERVER_WORKERS": "3",
        "MODEL_SERVER_TIMEOUT": "2.5", "MODEL_SERVER_KEEP_ALIVE": "5", "MAX_REQUEST_BYTES": "2048",
    })
    assert (cfg.host, cfg.port, cfg.workers, cfg.timeout, cfg.keep_alive, cfg.max_bytes) == ("::", 9000, 3, 2.5, 5.0, 2048)
    assert type(cfg.keep_alive) is float


BOUNDS = [
    # (variable, lowest accepted, highest accepted, text of the range in the message)
    ("SAGEMAKER_BIND_TO_PORT", "1", "65535", "between 1 and 65535"),
    ("MODEL_SERVER_WORKERS", "1", "512", "between 1 and 512"),
    ("MODEL_SERVER_TIMEOUT", "1", "3600", "between 1 and 3600"),
    ("MODEL_SERVER_KEEP_ALIVE", "1", "3600", "between 1 and 3600"),
    ("MAX_REQUEST_BYTES", "1024", "1073741824", "between 1024 and 1073741824"),
]


@pytest.mark.parametrize(("name", "low", "high", "range_text"), BOUNDS)
def test_each_setting_is_accepted_at_its_bounds_and_refused_past_them(name: str, low: str, high: str,
                                                                      range_text: str) -> None:
    attribute = {"SAGEMAKER_BIND_TO_PORT": "port", "MODEL_SERVER_WORKERS": "workers",
                 "MODEL_SERVER_TIMEOUT": "timeout", "MODEL_SERVER_KEEP_ALIVE": "keep_alive",
                 "MAX_REQUEST_BYTES": "max_bytes"}[name]
    assert getattr(ServerConfig.from_env({name: low}), attribute) == int(low)
    assert getattr(ServerConfig.from_env({name: high}), attribute) == int(high)
    for bad in (str(int(low) - 1), str(int(high) + 1)):
        with pytest.raises(UserError) as caught:
            ServerConfig.from_env({name: bad})
        assert str(caught.value) == f"{name}='{bad}' must be {range_text}"


@pytest.mark.parametrize(("env", "message"), [
    ({"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT='http' is not an integer"),
    ({"MODEL_SERVER_WORKERS": "2.5"}, "MODEL_SERVER_WORKERS='2.5' is not an integer"),
    ({"MAX_REQUEST_BYTES": "6MiB"}, "MAX_REQUEST_BYTES='6MiB' is not an integer"),
    ({"MODEL_SERVER_TIMEOUT": "soon"}, "MODEL_SERVER_TIMEOUT='soon' is not a number"),
    ({"MODEL_SERVER_KEEP_ALIVE": "nan"}, "MODEL_SERVER_KEEP_ALIVE='nan' must be between 1 and 3600"),
    ({"MODEL_SERVER_TIMEOUT": "0.5"}, "MODEL_SERVER_TIMEOUT='0.5' must be between 1 and 3600"),
    ({"MODEL_SERVER_WORKERS": "0"}, "MODEL_SERVER_WORKERS='0' must be between 1 and 512"),
    ({"MAX_REQUEST_BYTES": "10"}, "MAX_REQUEST_BYTES='10' must be between 1024 and 1073741824"),
])
def test_a_value_that_is_not_a_number_is_named_with_the_rule(env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        ServerConfig.from_env(env)
    assert str(caught.value) == message


def _config(host: str, port: int) -> ServerConfig:
    return ServerConfig(host=host, port=port, workers=1, timeout=1.0, keep_alive=1.0, max_bytes=1024,
                        model_dir=Path("/nonexistent"), backlog=7)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _listen_backlog(port: int) -> int:
    """The accept queue's length of the socket listening on ``port`` (ss's Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], check=True, capture_output=True, text=True).stdout
    return int(out.split()[2])


def test_the_socket_listens_on_the_host_and_port_without_delaying_small_answers() -> None:
    sock = server.bind(_config("127.0.0.1", 0))
    try:
        assert sock.family == socket.AF_INET
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        if shutil.which("ss"):  # iproute2: the kernel's own account of the listen queue
            assert _listen_backlog(sock.getsockname()[1]) == 7
    finally:
        sock.close()
    if _ipv6_loopback():
        sock = server.bind(_config("::1", 0))
        assert (sock.family, sock.getsockname()[0]) == (socket.AF_INET6, "::1")
        sock.close()


def test_a_host_that_does_not_resolve_is_named_with_the_resolvers_reason() -> None:
    try:
        socket.getaddrinfo("no-such-host.invalid", 8080)
    except socket.gaierror as err:
        reason = err.strerror
    else:  # pragma: no cover - a resolver that answers for .invalid (RFC 6761 says none does)
        pytest.skip("this resolver answers for .invalid")
    with pytest.raises(UserError) as caught:
        server.bind(_config("no-such-host.invalid", 8080))
    assert str(caught.value) == f"cannot listen on no-such-host.invalid:8080: {reason}"


def test_a_port_in_use_is_said_at_once() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(UserError) as caught:
            server.bind(_config("127.0.0.1", port))
        assert str(caught.value) == (f"cannot listen on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)} (port in use)")
        with pytest.raises(UserError) as caught:
            server.bind(_config("192.0.2.1", 8080))  # TEST-NET-1: no interface has it
        assert str(caught.value) == f"cannot listen on 192.0.2.1:8080: {os.strerror(errno.EADDRNOTAVAIL)}"
    finally:
        taken.close()


def test_serve_with_a_bad_setting_stops_with_the_reason_and_ignores_arguments(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "0")
    assert server.main(["--port", "80"]) == 1
    lines = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert lines == [
        "serve takes no arguments (got --port 80); configure it with environment variables",
        "serve: SAGEMAKER_BIND_TO_PORT='0' must be between 1 and 65535",
    ]


# --- the workers' heartbeat file ----------------------------------------------------------------

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the master hands the file over as root")


@pytest.mark.parametrize(("user", "euid", "expected"), [
    ("nobody", 0, "nobody"),
    ("nobody", 1000, None),           # not root: the workers stay who they are
    ("", 0, None),                    # MLCONTAINER_USER unset or empty: no drop
    ("no-such-user-x", 0, None),      # unknown: privileges says so and stays root
])
def test_the_workers_target_user_is_the_one_privileges_drops_to(
        monkeypatch: pytest.MonkeyPatch, user: str, euid: int, expected: str | None) -> None:
    import pwd

    from mlcontainer import httpserver, privileges

    monkeypatch.setenv(privileges.USER_ENV, user)
    monkeypatch.setattr(httpserver.os, "geteuid", lambda: euid)
    target = httpserver._target_user()
    assert (target and target.pw_name) == expected
    if expected:
        assert target == pwd.getpwnam(expected)


@NEEDS_ROOT
def test_a_worker_that_drops_root_can_still_prove_it_is_alive(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """gunicorn's worker proves it is alive with ``os.utime(tmp, (t, t))`` on a file the
    master made as root, and setting explicit times takes the file's owner: the worker,
    once it is ``nobody``, could not, and the master would kill it as hung after
    MODEL_SERVER_TIMEOUT seconds, again and again. The worker's init hook hands the file
    over first."""
    import pwd
    from types import SimpleNamespace

    from mlcontainer import httpserver, privileges

    nobody = pwd.getpwnam("nobody")
    monkeypatch.setenv(privileges.USER_ENV, "nobody")

    def beat_as_nobody(fd: int) -> int:
        return subprocess.run(["touch", "-d", "@1", f"/proc/self/fd/{fd}"], pass_fds=[fd],
                              user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                              capture_output=True, check=False).returncode

    with open(tmp_path / "heartbeat", "w+b", 0) as tmp:
        assert beat_as_nobody(tmp.fileno()) != 0  # root's file: nobody may not set its times
        httpserver._post_worker_init(SimpleNamespace(tmp=tmp))
        stat = os.fstat(tmp.fileno())
        assert (stat.st_uid, stat.st_gid) == (nobody.pw_uid, nobody.pw_gid)
        assert beat_as_nobody(tmp.fileno()) == 0
        assert os.fstat(tmp.fileno()).st_mtime == 1


def test_a_worker_that_stays_root_keeps_its_heartbeat_file_as_it_is(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mlcontainer import httpserver, privileges

    monkeypatch.delenv(privileges.USER_ENV, raising=False)
    calls = []
    monkeypatch.setattr(httpserver.os, "fchown", lambda *args: calls.append(args))
    with open(tmp_path / "heartbeat", "w+b", 0) as tmp:
        httpserver._post_worker_init(SimpleNamespace(tmp=tmp))
    assert calls == []
