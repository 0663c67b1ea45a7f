"""Several gunicorn servers of the reliability app on free loopback ports, sharing one database and one Redis."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import requests

from ..servers import free_port
from ..test_ratelimit_redis import gunicorn_has_control_socket, stop, wait_until

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

    ``settings`` holds ``SQLALCHEMY_DATABASE_URI`` and any ``FEDERATION_*`` or ``RELIABILITY_*`` values.
    """
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FEDERATION_")}
    environment.update(settings)
    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for number in range(count):
            port = free_port()
            with (log_dir / f"gunicorn-{number}.log").open("wb") as log:
                command = _gunicorn_command(port, workers, threads, timeout)
                servers.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT))

            urls.append(f"http://127.0.0.1:{port}")

        for server, url in zip(servers, urls, strict=True):

            def ready(server: subprocess.Popen[bytes] = server, url: str = url) -> bool:
                if server.poll() is not None:
                    raise AssertionError(f"gunicorn exited with {server.returncode}; see {log_dir}/gunicorn-*.log")

                try:
                    return requests.get(f"{url}/federation/openapi.json", timeout=5).status_code == 200
                except requests.ConnectionError:
                    return False

            wait_until(ready, 30, f"gunicorn on {url}")

        yield urls
    finally:
        for server in servers:
            stop(server)
