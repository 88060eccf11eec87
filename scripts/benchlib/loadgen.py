"""Load generators: ``wrk`` when installed, else a multi-process Python generator on
keep-alive connections (closed loop). Both report requests/s and p50/p99 latency."""

from __future__ import annotations

import asyncio
import http.client
import multiprocessing
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


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
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out,
                                re.MULTILINE).groups()
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


class LoadGenerator:
    """One of the two generators, chosen once for the whole run."""

    def __init__(self, kind: str, scratch: Path) -> None:
        if kind == "auto":
            kind = "wrk" if wrk_version() else "python"
        self.kind = kind
        self.scratch = scratch
        self.label = (f"wrk {wrk_version()}" if kind == "wrk"
                      else "python (asyncio, keep-alive)")

    def __call__(self, port: int, body: bytes, concurrency: int, seconds: float) -> Load:
        if self.kind == "wrk":
            return run_wrk(port, body, concurrency, seconds, self.scratch)
        return run_python_load(port, body, concurrency, seconds)
