"""Shared fixtures: the example config, a moto server on 127.0.0.1, the real AWS CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_templates import config as config_mod

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "mlops.yaml"
TEMPLATES = REPO / "templates"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real AWS account: fake credentials, no profile."""
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def example_config() -> config_mod.Config:
    return config_mod.load(EXAMPLE_CONFIG)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the real AWS CLI; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_cli(endpoint: str, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real AWS CLI (from this venv) against ``endpoint``."""
    exe = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_PAGER": ""}
    env.pop("AWS_PROFILE", None)
    proc = subprocess.run(
        [exe, "--endpoint-url", endpoint, *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc
