"""Servers and fixtures that the benchmark scripts share: a private Redis, gunicorn, wrk and seed data.

Everything binds 127.0.0.1 on a free port and is stopped by the script that started it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata as package_metadata
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent

#: Packages whose versions every benchmark prints with its results.
VERSIONED_PACKAGES = (
    "flask-federation",
    "Flask",
    "Werkzeug",
    "Flask-SQLAlchemy",
    "SQLAlchemy",
    "psycopg",
    "Flask-Limiter",
    "limits",
    "redis",
    "joserfc",
    "gunicorn",
    "Flask-HTTPAuth",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def versions() -> str:
    """Return one line naming Python and the installed version of each package in :data:`VERSIONED_PACKAGES`."""
    parts = [f"Python {platform.python_version()}"]
    for name in VERSIONED_PACKAGES:
        try:
            parts.append(f"{name} {package_metadata.version(name)}")
        except package_metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")

    redis_server = shutil.which("redis-server")
    if redis_server is not None:
        output = subprocess.run([redis_server, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"v=(\S+)", output)
        parts.append(f"redis-server {match.group(1) if match else 'unknown'}")

    return ", ".join(parts)


def load_average() -> str:
    """Return the 1-, 5- and 15-minute load averages, to print beside results measured on a shared machine."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def wait_until(check: object, timeout: float, what: str) -> None:
    """Call ``check`` until it returns true; raise naming ``what`` after ``timeout`` seconds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, redis.RedisError):
            pass

        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not become ready within {timeout:.0f} s.")

        time.sleep(0.05)


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """Start a redis-server without persistence on a free loopback port, yield its URL, and stop it."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")

    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        wait_until(client.ping, 10, f"redis-server on port {port}")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@dataclasses.dataclass
class Gunicorn:
    """A running gunicorn arbiter and the URL it serves."""

    process: subprocess.Popen[bytes]
    url: str

    def worker_pids(self) -> list[int]:
        """Return the pids of the arbiter's worker processes, read from ``/proc``."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return sorted(int(pid) for pid in children)


@contextlib.contextmanager
def gunicorn(app: str, environment: dict[str, str], workers: int = 2) -> Iterator[Gunicorn]:
    """Serve the WSGI ``app`` (``module:factory()``) with sync workers on a free loopback port; stop it afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        "--chdir",
        str(ROOT),
        app,
    ]
    process = subprocess.Popen(command, env={**os.environ, **environment})
    server = Gunicorn(process, f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: _accepts(port) and len(server.worker_pids()) == workers, 30, f"gunicorn {app}")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@dataclasses.dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


# wrk's own options cannot cap the request count, so this script stops each thread after its share. wrk
# itself still runs until its duration ends, holding connections that sync workers wait on, so callers
# size the duration to end first and keep the cap as a safety bound.
_WRK_SCRIPT = """
local limit = tonumber(os.getenv("WRK_MAX_REQUESTS_PER_THREAD"))
local done = 0
function response(status, headers, body)
  done = done + 1
  if done >= limit then wrk.thread:stop() end
end
"""

_LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _milliseconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if match is None:
        raise ValueError(f"wrk printed the latency {value!r}, which this parser does not know.")

    return float(match.group(1)) * _LATENCY_UNITS[match.group(2)]


def run_wrk(
    url: str,
    headers: dict[str, str],
    *,
    seconds: int,
    max_requests: int,
    connections: int = 4,
    threads: int = 1,
) -> WrkResult:
    """Drive ``url`` with wrk for at most ``seconds`` and at most ``max_requests`` requests; parse its summary."""
    executable = shutil.which("wrk")
    if executable is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)

    command = [executable, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", script.name]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]

    environment = {**os.environ, "WRK_MAX_REQUESTS_PER_THREAD": str(max(1, max_requests // threads))}
    try:
        completed = subprocess.run(
            [*command, url], capture_output=True, text=True, check=True, env=environment, timeout=seconds + 60
        )
    finally:
        os.unlink(script.name)

    return parse_wrk(completed.stdout)


def parse_wrk(output: str) -> WrkResult:
    """Return the figures of a ``wrk --latency`` summary."""
    totals = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if totals is None or p50 is None or p99 is None:
        raise ValueError(f"Could not parse the wrk output:\n{output}")

    seconds = float(totals.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[totals.group(3)]
    requests = int(totals.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests=requests,
        seconds=seconds,
        requests_per_second=requests / seconds,
        p50_ms=_milliseconds(p50.group(1)),
        p99_ms=_milliseconds(p99.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(value) for value in errors.groups()) if errors else 0,
    )
