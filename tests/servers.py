"""Servers that tests start on free loopback ports and always stop: the app over HTTP, and a private Redis."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from flask import Flask
from werkzeug.serving import make_server

from .services import skip_or_fail


def wait_until(check: Callable[[], bool], timeout: float, description: str) -> None:
    """Call ``check`` every 50 ms until it returns true; fail naming ``description`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return

        time.sleep(0.05)

    raise AssertionError(f"timed out after {timeout} s waiting for {description}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` and wait for it, killing it when it has not exited after 10 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def gunicorn_has_control_socket() -> bool:
    """Return whether the installed gunicorn opens a control socket, which ``--no-control-socket`` turns off."""
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_app(app: Flask) -> Iterator[str]:
    """Serve ``app`` with werkzeug's threaded server on a free loopback port and yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval, so that shutdown() returns within 50 ms instead of werkzeug's 500.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


class PrivateRedis:
    """A redis-server of this test alone, which the test may pause, stop or restart without touching the shared one."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, persistence_dir: Path | None = None) -> None:
        self.process = process
        self.port = port
        self.persistence_dir = persistence_dir
        self.url = f"redis://127.0.0.1:{port}/0"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """End the server with SIGKILL, as a crash would."""
        if self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        """Stop the server if it runs, and start an empty one on the same port."""
        self.stop()
        self.process = _start_redis_server(self.port, self.persistence_dir)
        _wait_for_ping(self.url)


def _start_redis_server(port: int, persistence_dir: Path | None) -> subprocess.Popen[bytes]:
    executable = shutil.which("redis-server")
    if executable is None:
        skip_or_fail("redis-server is not installed, so the Redis outage tests cannot start their own server")

    command = [str(executable), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    if persistence_dir is None:
        command += ["--appendonly", "no"]
    else:
        # Every write is synced to the append-only file, so a restart loses nothing.
        command += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(persistence_dir)]

    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def private_redis(persistence_dir: Path | None = None) -> Iterator[PrivateRedis]:
    """Start a redis-server on a free loopback port, persistent in ``persistence_dir`` if given; stop it afterwards."""
    port = free_port()
    server = PrivateRedis(_start_redis_server(port, persistence_dir), port, persistence_dir)
    try:
        _wait_for_ping(server.url)
        yield server
    finally:
        server.stop()


def _wait_for_ping(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise

                time.sleep(0.05)
    finally:
        client.close()


class RedisCommandLog:
    """The top-level commands a Redis server receives, read from ``MONITOR`` in a thread.

    Commands that a script runs inside Redis are left out: only the client's own
    commands are round trips. ``ECHO`` markers tell when every earlier command has been seen.
    """

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._marker_client = redis.Redis.from_url(url)
        self._commands: list[str] = []
        self._markers: set[str] = set()
        self._condition = threading.Condition()
        self._monitor = self._client.monitor()
        self._monitor.__enter__()
        threading.Thread(target=self._listen, name="redis-monitor", daemon=True).start()

    def _listen(self) -> None:
        try:
            for command in self._monitor.listen():
                text = str(command["command"])
                with self._condition:
                    if text.startswith("ECHO marker-"):
                        self._markers.add(text.removeprefix("ECHO "))
                        self._condition.notify_all()
                    elif command.get("client_type") != "lua":
                        self._commands.append(text)
        except (redis.ConnectionError, ValueError):
            return  # The server stopped or the monitor was closed.

    def _sync(self) -> None:
        marker = f"marker-{time.monotonic_ns()}"
        self._marker_client.echo(marker)
        with self._condition:
            assert self._condition.wait_for(lambda: marker in self._markers, timeout=10), "MONITOR lost a marker"

    def commands_during(self, action: Callable[[], object]) -> list[str]:
        """Run ``action`` and return the commands that arrived meanwhile, such as ``EVALSHA <sha> 2 key ...``."""
        self._sync()
        with self._condition:
            self._commands.clear()

        action()
        self._sync()
        with self._condition:
            return list(self._commands)

    def close(self) -> None:
        self._marker_client.close()
        self._client.close()
