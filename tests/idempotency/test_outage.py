"""A store that is down, stalled or broken: 503 with Retry-After, no side effect, one warning per outage."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from flask_federation.idempotency import get_idempotency_store
from flask_federation.models import Tenant
from flask_federation.state import get_state

from ..conftest import World, bearer
from ..servers import PrivateRedis, private_redis

TENANTS = "/federation/provider/v1/tenants"


@pytest.fixture
def backend() -> str:
    # The outage tests choose their store themselves; the tenants live in SQLite.
    return "sqlite-sql"


def _create(client: Any, world: World, slug: str) -> Any:
    headers = {**bearer(world.key_a), "Idempotency-Key": f"create-{slug}"}
    return client.post(TENANTS, json={"name": slug, "slug": slug, "region": "eu-west-1"}, headers=headers)


def _tenants_with_slug(slug: str) -> int:
    query = select(func.count()).select_from(Tenant).filter_by(slug=slug)
    return int(get_state().session.execute(query).scalar_one())


def _outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "flask_federation.idempotency" and record.levelno == logging.WARNING
    ]


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5"


def test_sql_store_outage(
    make_store_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_store_app()
    with app.app_context():
        world = World()
        client = app.test_client()
        store = get_idempotency_store()
        working_engine = store._get_engine()  # type: ignore[attr-defined]
        broken_engine = mock.create_autospec(Engine, instance=True)
        failure = OperationalError("BEGIN", {}, ConnectionRefusedError("connection refused"))
        broken_engine.begin.side_effect = failure
        broken_engine.connect.side_effect = failure
        monkeypatch.setattr(store, "_get_engine", lambda: broken_engine)

        first = _create(client, world, "down-1")
        second = _create(client, world, "down-2")
        _assert_unavailable(first)
        _assert_unavailable(second)
        assert _tenants_with_slug("down-1") == 0
        assert _tenants_with_slug("down-2") == 0
        warnings = _outage_warnings(caplog)
        assert len(warnings) == 1
        assert "connection refused" in warnings[0]

        monkeypatch.setattr(store, "_get_engine", lambda: working_engine)
        recovered = _create(client, world, "down-1")
        assert recovered.status_code == 201
        assert "available again" in _outage_warnings(caplog)[-1]


@contextlib.contextmanager
def _app_on_private_redis(make_store_app: Callable[..., Flask]) -> Iterator[tuple[PrivateRedis, Any, World]]:
    """Yield a private Redis, a client of an app that stores keys in it, and the world; the first write works."""
    with private_redis() as server:
        app = make_store_app(FEDERATION_IDEMPOTENCY_STORE=server.url)
        with app.app_context():
            world = World()
            client = app.test_client()
            assert _create(client, world, "before").status_code == 201
            yield server, client, world


def test_redis_store_stopped(make_store_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    with _app_on_private_redis(make_store_app) as (server, client, world):
        server.stop()
        started = time.monotonic()
        responses = [_create(client, world, "during"), _create(client, world, "during")]
        elapsed = time.monotonic() - started

        for response in responses:
            _assert_unavailable(response)

        assert _tenants_with_slug("during") == 0
        assert elapsed < 5
        assert len(_outage_warnings(caplog)) == 1


def test_redis_store_stalled(make_store_app: Callable[..., Flask]) -> None:
    with _app_on_private_redis(make_store_app) as (server, client, world):
        server.pause()
        started = time.monotonic()
        stalled = _create(client, world, "stalled")
        elapsed = time.monotonic() - started
        server.resume()

        _assert_unavailable(stalled)
        assert elapsed < 3
        assert _tenants_with_slug("stalled") == 0
        # The stalled claim may still have reached Redis after the timeout, so the retry uses a new key.
        assert _create(client, world, "after").status_code == 201
