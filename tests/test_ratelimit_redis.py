"""Rate limits on real Redis: exact admission under concurrency, across processes, and storage outages."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify

from flask_federation import admin, with_provider_auth, with_rate_limit
from flask_federation.models import metadata, utcnow
from flask_federation.state import get_state

from .conftest import World, bearer
from .servers import PrivateRedis, free_port, gunicorn_has_control_socket, private_redis, stop, wait_until
from .services import require_redis

REPOSITORY = Path(__file__).resolve().parent.parent
TENANTS = "/federation/provider/v1/tenants"
LOGGER = "flask_federation.ratelimit"


def tenants_key_with_touched_credential(world: World) -> str:
    """Return provider A's key after marking it used, so that concurrent requests read but never write it."""
    issued = admin.issue_key(world.provider_a.public_id, ["tenants:read"])
    issued.credential.last_used_at = utcnow()
    get_state().session.commit()
    return issued.key


# Exact admission under concurrency


def test_concurrent_requests_admit_exactly_limit(
    make_app: Callable[..., Flask], redis_rate_limits: dict[str, str]
) -> None:
    app = make_app(**redis_rate_limits)

    @app.get("/host/reports")
    @with_rate_limit("5/minute")
    @with_provider_auth("tenants:read")
    def reports() -> Any:
        return jsonify(ok=True)

    with app.app_context():
        key = tenants_key_with_touched_credential(World())

    def call(_: int) -> int:
        return app.test_client().get("/host/reports", headers=bearer(key)).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = Counter(pool.map(call, range(50)))

    assert statuses == {200: 5, 429: 45}


@pytest.fixture
def gunicorn_servers(tmp_path: Path, redis_rate_limits: dict[str, str]) -> Iterator[tuple[list[str], str]]:
    """Start two gunicorn servers of two workers each on one SQLite file and one Redis; yield their URLs and a key."""
    database_url = f"sqlite:///{tmp_path}/federation.db"
    setup = Flask("ratelimit_gunicorn_setup")
    setup.config.update(SECRET_KEY="test-secret", SQLALCHEMY_DATABASE_URI=database_url, FEDERATION_ENABLED=True)
    from flask_federation import Federation

    Federation(setup)
    with setup.app_context():
        metadata.create_all(get_state().db.engine)
        key = tenants_key_with_touched_credential(World())
        get_state().db.engine.dispose()

    environment = {name: value for name, value in os.environ.items() if not name.startswith("FEDERATION_")}
    environment.update(redis_rate_limits)
    environment.update(SQLALCHEMY_DATABASE_URI=database_url, FEDERATION_PROVIDER_RATE_LIMIT="5/minute")
    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for number in range(2):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--chdir",
                str(REPOSITORY),
                "tests.ratelimit_app:create_app()",
            ]
            if gunicorn_has_control_socket():
                # Two servers would otherwise share one control socket in the home directory.
                command.insert(-1, "--no-control-socket")

            with (tmp_path / f"gunicorn-{number}.log").open("wb") as log:
                servers.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT))

            urls.append(f"http://127.0.0.1:{port}")

        for server, url in zip(servers, urls, strict=True):

            def ready(server: subprocess.Popen[bytes] = server, url: str = url) -> bool:
                if server.poll() is not None:
                    raise AssertionError(f"gunicorn exited with {server.returncode}; see {tmp_path}/gunicorn-*.log")

                try:
                    return requests.get(f"{url}/federation/openapi.json", timeout=5).status_code == 200
                except requests.ConnectionError:
                    return False

            wait_until(ready, 30, f"gunicorn on {url}")

        yield urls, key
    finally:
        for server in servers:
            stop(server)


def test_processes_share_one_limit(gunicorn_servers: tuple[list[str], str]) -> None:
    urls, key = gunicorn_servers

    def call(number: int) -> int:
        return requests.get(f"{urls[number % 2]}{TENANTS}", headers=bearer(key), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = Counter(pool.map(call, range(50)))

    assert statuses == {200: 5, 429: 45}


# Storage outages, on a Redis server of the test's own


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test alone, which the test may pause, kill and restart."""
    require_redis()
    with private_redis() as server:
        yield server


def _outage_app(make_app: Callable[..., Flask], own_redis: PrivateRedis, **config: Any) -> Flask:
    app = make_app(
        FEDERATION_RATELIMIT_STORAGE_URI=own_redis.url,
        FEDERATION_RATELIMIT_POLICIES={"strict": {"limit": "100/minute", "fail_closed": True}},
        **config,
    )

    @app.get("/host/open")
    @with_rate_limit("100/minute")
    def open_route() -> Any:
        return jsonify(ok=True)

    @app.get("/host/strict")
    @with_rate_limit(policy="strict")
    def strict_route() -> Any:
        return jsonify(ok=True)

    return app


def remaining(response: Any) -> int:
    field = response.headers["RateLimit"]
    return int(field.split(";r=")[1].split(";")[0])


def timed_get(client: Any, path: str) -> tuple[Any, float]:
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno == logging.WARNING and "unreachable" in record.message]


def test_paused_storage_fails_open_then_recovers(
    make_app: Callable[..., Flask], own_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    app = _outage_app(make_app, own_redis)
    client = app.test_client()
    assert client.get("/host/open").headers["RateLimit"].startswith('"open_route";r=99;')
    caplog.set_level(logging.INFO, logger=LOGGER)
    own_redis.pause()
    for _ in range(3):
        response, elapsed = timed_get(client, "/host/open")
        assert response.status_code == 200
        assert elapsed < 2
        assert response.headers["RateLimit-Policy"] == '"open_route";q=100;w=60'
        assert "RateLimit" not in response.headers

    assert len(outage_warnings(caplog)) == 1
    own_redis.resume()
    response = client.get("/host/open")
    assert response.status_code == 200
    # A stalled Redis still runs the commands it received before the timeouts, so outage requests may count.
    assert 95 <= remaining(response) <= 98
    assert any("reachable again" in record.message for record in caplog.records)


def test_paused_storage_fails_closed_per_policy(make_app: Callable[..., Flask], own_redis: PrivateRedis) -> None:
    app = _outage_app(make_app, own_redis)
    client = app.test_client()
    own_redis.pause()
    response, elapsed = timed_get(client, "/host/strict")
    assert elapsed < 2
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json["error"]["code"] == "service_unavailable"
    assert response.json["error"]["details"] == {"policy": "strict"}
    assert response.headers["RateLimit-Policy"] == '"strict";q=100;w=60'
    assert client.get("/host/open").status_code == 200
    own_redis.resume()
    assert client.get("/host/strict").status_code == 200


def test_stopped_storage_fails_closed_then_recovers(
    make_app: Callable[..., Flask], own_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    app = _outage_app(make_app, own_redis, FEDERATION_RATELIMIT_FAIL_CLOSED=True)
    client = app.test_client()
    assert client.get("/host/open").status_code == 200
    caplog.set_level(logging.INFO, logger=LOGGER)
    own_redis.kill()
    for path in ("/host/open", "/host/strict", "/host/open"):
        response, elapsed = timed_get(client, path)
        assert elapsed < 2
        assert response.status_code == 503
        assert response.json["error"]["code"] == "service_unavailable"
        assert int(response.headers["Retry-After"]) >= 1

    assert len(outage_warnings(caplog)) == 1
    own_redis.restart()
    response = client.get("/host/open")
    assert response.status_code == 200
    assert response.headers["RateLimit"].startswith('"open_route";r=99;')


def test_paused_storage_serves_federation_route(
    make_app: Callable[..., Flask], own_redis: PrivateRedis
) -> None:
    app = make_app(FEDERATION_RATELIMIT_STORAGE_URI=own_redis.url, FEDERATION_RATELIMIT_KEY_PREFIX=f"t{uuid.uuid4().hex}")
    with app.app_context():
        world = World()
        developer_key = world.key_dev

    client = app.test_client()
    own_redis.pause()
    started = time.monotonic()
    response = client.get("/federation/developer/v1/diagnostics", headers=bearer(developer_key))
    assert time.monotonic() - started < 2
    assert response.status_code == 200
    assert response.json["data"]["rate_limit"] is None
