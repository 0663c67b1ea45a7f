"""Faults under load: Redis paused, stopped and restarted, PostgreSQL restarted, a slow database.

Each run sends a bounded stream of reads and writes from a few threads while the
fault happens. It then checks that every response was an envelope within the
client timeout and that the configured behaviour held during the fault. The
service must recover by itself, and every committed write must have its audit
event and its idempotency record.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from flask_federation.state import get_state

from ..servers import PrivateRedis, private_redis, serve_app
from ..services import require_postgres
from .clusters import OwnPostgres, own_postgres
from .hosts import gunicorn_hosts
from .support import (
    CLIENT_TIMEOUT,
    TENANTS,
    LoadRun,
    Result,
    Seeds,
    assert_writes_recorded,
    create_tenant,
    seeded_database,
    send,
    wait_for,
)

#: Maximum seconds a request may take while a store stalls: the storage timeouts (1 s) plus generous slack.
STALL_BOUND = 5.0


def _mixed_load(base_url: str, seeds: Seeds) -> Callable[[int], Result]:
    def request(number: int) -> Result:
        if number % 2 == 0:
            return create_tenant(base_url, seeds.key_a)

        return send("GET", base_url + TENANTS, seeds.key_a)

    return request


def _assert_every_response_bounded_envelope(results: list[Result]) -> None:
    assert results, "the load run sent no request"
    for result in results:
        assert result.error is None, f"{result.method} {result.url} failed at the client: {result.error}"
        assert result.elapsed < CLIENT_TIMEOUT
        result.envelope()


def _assert_unavailable(result: Result) -> None:
    assert result.status == 503, result.body
    assert result.envelope()["error"]["code"] == "service_unavailable"
    assert int(result.headers["Retry-After"]) >= 1


def _created(results: list[Result]) -> dict[str, Result]:
    """Return the last result per attempted slug (its Idempotency-Key too)."""
    return {result.idempotency_key: result for result in results if result.idempotency_key is not None}


def _recovered(base_url: str, seeds: Seeds) -> bool:
    read = send("GET", base_url + TENANTS, seeds.key_a)
    write = create_tenant(base_url, seeds.key_a)
    return read.status == 200 and write.status == 201


# Redis


@pytest.fixture
def redis_host(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Seeds, Flask, PrivateRedis]]:
    """Serve the app with rate limits, usage counts and idempotency keys in a Redis of the test's own.

    The param is FEDERATION_RATELIMIT_FAIL_CLOSED. The Redis server syncs an
    append-only file on every write, so that a restart keeps the idempotency
    records, as a production deployment of the Redis store must.
    """
    database_url = require_postgres()
    with private_redis(persistence_dir=tmp_path) as server, seeded_database(database_url) as (app, seeds):
        settings = {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "FEDERATION_RATELIMIT_STORAGE_URI": server.url,
            "FEDERATION_RATELIMIT_STORAGE_TIMEOUT": "0.5",
            "FEDERATION_RATELIMIT_FAIL_CLOSED": str(request.param).lower(),
            "FEDERATION_PROVIDER_RATE_LIMIT": "100000/minute",
            "FEDERATION_AUTH_USAGE_STORAGE_URI": server.url,
            "FEDERATION_IDEMPOTENCY_STORE": server.url,
        }
        with gunicorn_hosts(1, settings, tmp_path) as urls:
            yield urls[0], seeds, app, server


def _during(run: LoadRun, start: float, end: float) -> list[Result]:
    # Only requests that started after the fault had taken hold and ended before it was lifted.
    return [result for result in run.between(start + 0.3, end) if result.started + result.elapsed < end]


@pytest.mark.slow
@pytest.mark.parametrize("redis_host", [False, True], ids=["fail-open", "fail-closed"], indirect=True)
def test_redis_paused_stopped_restarted(
    redis_host: tuple[str, Seeds, Flask, PrivateRedis], request: pytest.FixtureRequest
) -> None:
    base_url, seeds, app, server = redis_host
    fail_closed = request.node.callspec.id.endswith("fail-closed")
    with LoadRun(_mixed_load(base_url, seeds)) as run:
        time.sleep(1.5)
        paused_at = time.monotonic()
        server.pause()
        time.sleep(3)
        server.resume()
        resumed_at = time.monotonic()
        time.sleep(1.5)
        stopped_at = time.monotonic()
        server.stop()
        time.sleep(2.5)
        restarted_at = time.monotonic()
        server.restart()
        recovery = wait_for(lambda: _recovered(base_url, seeds), 15, "recovery after the Redis restart")
        time.sleep(1)

    _assert_every_response_bounded_envelope(run.results)
    for result in run.between(paused_at, resumed_at):
        assert result.elapsed < STALL_BOUND, f"{result.method} took {result.elapsed:.1f} s while Redis was paused"

    for start, end in ((paused_at, resumed_at), (stopped_at, restarted_at)):
        during = _during(run, start, end)
        assert during, "no request ran entirely during the fault"
        for result in during:
            if result.method == "POST" or fail_closed:
                _assert_unavailable(result)
            else:
                assert result.status == 200, result.body

    assert recovery < 15
    after = [result for result in run.results if result.started > restarted_at + recovery + 0.5]
    assert after, "no request ran after the recovery"
    assert {result.status for result in after} <= {200, 201}
    assert_writes_recorded(app, seeds.provider_a, _created(run.results), redis_store=server.url)


# PostgreSQL


@pytest.fixture
def postgres_host(tmp_path: Path) -> Iterator[tuple[str, Seeds, Flask, OwnPostgres]]:
    """Serve the app on a PostgreSQL cluster of the test's own, with the SQL idempotency store."""
    with own_postgres() as cluster, seeded_database(cluster.url) as (app, seeds):
        settings = {
            "SQLALCHEMY_DATABASE_URI": cluster.url,
            "FEDERATION_PROVIDER_RATE_LIMIT": "100000/minute",
            "FEDERATION_IDEMPOTENCY_STORE": "sql",
        }
        with gunicorn_hosts(1, settings, tmp_path) as urls:
            yield urls[0], seeds, app, cluster


@pytest.mark.slow
def test_postgres_restarted_under_load(postgres_host: tuple[str, Seeds, Flask, OwnPostgres]) -> None:
    base_url, seeds, app, cluster = postgres_host
    with LoadRun(_mixed_load(base_url, seeds)) as run:
        time.sleep(1.5)
        stopped_at = time.monotonic()
        cluster.stop("fast")
        time.sleep(2.5)
        restarted_at = time.monotonic()
        cluster.start()
        recovery = wait_for(lambda: _recovered(base_url, seeds), 20, "recovery after the PostgreSQL restart")
        time.sleep(1)

    _assert_every_response_bounded_envelope(run.results)
    during = _during(run, stopped_at, restarted_at)
    assert during, "no request ran entirely while PostgreSQL was down"
    for result in during:
        _assert_unavailable(result)

    after = [result for result in run.results if result.started > restarted_at + recovery + 0.5]
    assert after, "no request ran after the recovery"
    assert {result.status for result in after} <= {200, 201}
    tenants = assert_writes_recorded(app, seeds.provider_a, _created(run.results))
    assert tenants, "no write succeeded in the whole run"


# A slow database


@pytest.fixture
def database_url() -> str:
    # Lock waits and statement_timeout are PostgreSQL's; SQLite has neither in this form.
    return require_postgres()


def test_slow_database_times_out_with_503(make_app: Callable[..., Flask]) -> None:
    """Check that a query stuck behind a lock ends at the host's statement_timeout as a 503, then recovers."""
    engine_options = {"connect_args": {"options": "-c statement_timeout=300"}}
    app = make_app(SQLALCHEMY_ENGINE_OPTIONS=engine_options, FEDERATION_IDEMPOTENCY_STORE="sql")
    with app.app_context():
        from ..conftest import World

        world = World()
        seeds = Seeds(world.provider_a.public_id, world.key_a, world.key_b, world.key_dev, world.tenant_a.public_id)
        engine = get_state().db.engine

    slug = f"slow-{uuid.uuid4().hex[:12]}"
    with serve_app(app) as base_url:
        with engine.connect() as blocker:
            # Another session holds the tenants table, so every query on it waits for the lock.
            blocker.execute(text("LOCK TABLE federation_tenants IN ACCESS EXCLUSIVE MODE"))
            read = send("GET", base_url + TENANTS, seeds.key_a)
            write = create_tenant(base_url, seeds.key_a, slug)
            blocker.rollback()

        _assert_unavailable(read)
        _assert_unavailable(write)
        assert read.elapsed < STALL_BOUND
        assert write.elapsed < STALL_BOUND
        # The failed write released its key, so the same request runs once the database is fast again.
        retried = create_tenant(base_url, seeds.key_a, slug)
        assert retried.status == 201, retried.body
        assert send("GET", base_url + TENANTS, seeds.key_a).status == 200

    assert_writes_recorded(app, seeds.provider_a, {slug: retried})


def test_connection_closed_under_session_keeps_response(make_app: Callable[..., Flask]) -> None:
    """Check that a connection the database closed before teardown does not turn the response into a server error."""
    app = make_app()

    @app.get("/host/connection-killed")
    def connection_killed() -> Any:
        session = get_state().session
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with get_state().db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        return {"ok": True}

    response = app.test_client().get("/host/connection-killed")
    assert response.status_code == 200
    assert response.json == {"ok": True}
