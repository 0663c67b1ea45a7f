"""Several gunicorn servers of the reliability app on free loopback ports, sharing one database and one Redis."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from ..servers import free_port, gunicorn_has_control_socket, stop, wait_until

REPOSITORY = Path(__file__).resolve().parents[2]
APP = "tests.reliability.app:create_app()"


def _gunicorn_command(port: int, workers: int, threads: int, timeout: int) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--timeout",
        str(timeout),
        "--graceful-timeout",
        "5",
        "--chdir",
        str(REPOSITORY),
    ]
    if gunicorn_has_control_socket():
        # Two servers would otherwise share one control socket in the home directory.
        command.append("--no-control-socket")

    return [*command, APP]


def _ready(process: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    """Return whether our gunicorn serves ``url``; raise when it exited for another reason than a taken port."""
    if process.poll() is not None:
        if "Connection in use" in log.read_text(errors="replace"):
            return False

        raise AssertionError(f"gunicorn exited with {process.returncode}; see {log}")

    # Another process may have taken the port between free_port() and the bind; only our log proves the bind.
    if f"Listening at: {url}" not in log.read_text(errors="replace"):
        return False

    try:
        return requests.get(f"{url}/federation/openapi.json", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _started_or_exited(process: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    return _ready(process, url, log) or process.poll() is not None


def _start_server(
    environment: Mapping[str, str], log: Path, workers: int, threads: int, timeout: int
) -> tuple[subprocess.Popen[bytes], str]:
    """Start one gunicorn server on a free port and wait until it serves; try another port if this one was taken."""
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log.open("wb") as output:
            command = _gunicorn_command(port, workers, threads, timeout)
            process = subprocess.Popen(command, env=dict(environment), stdout=output, stderr=subprocess.STDOUT)

        try:
            wait_until(functools.partial(_started_or_exited, process, url, log), 30, f"gunicorn on {url}")
        except BaseException:
            stop(process)
            raise

        if process.poll() is None:
            return process, url

    raise AssertionError(f"gunicorn found its port taken three times; see {log}")


@contextlib.contextmanager
def gunicorn_hosts(
    count: int,
    settings: Mapping[str, str],
    log_dir: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    timeout: int = 30,
) -> Iterator[list[str]]:
    """Start ``count`` gunicorn servers with ``settings`` as environment; yield their base URLs, then stop them.

    ``settings`` contains ``SQLALCHEMY_DATABASE_URI`` and any ``FEDERATION_*`` or ``RELIABILITY_*`` values.
    """
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FEDERATION_")}
    environment.update(settings)
    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for number in range(count):
            process, url = _start_server(environment, log_dir / f"gunicorn-{number}.log", workers, threads, timeout)
            servers.append(process)
            urls.append(url)

        yield urls
    finally:
        for server in servers:
            stop(server)
