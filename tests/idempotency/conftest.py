"""Fixtures of the idempotency tests: every test runs on each store, the SQL one on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from ..services import require_postgres, require_redis

#: Database and idempotency store of one run. Redis runs once, on SQLite, because the database does not change it.
BACKENDS = ["sqlite-sql", "postgresql-sql", "sqlite-redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Any) -> str:
    if backend.startswith("sqlite"):
        # A file, not :memory:, so that the store's own connections see the same database.
        return f"sqlite:///{tmp_path}/federation.db"

    return require_postgres()


@pytest.fixture
def store_settings(backend: str) -> Iterator[dict[str, Any]]:
    """Return the FEDERATION_* settings that select the backend's store; Redis keys get a prefix of their own."""
    if backend.endswith("-sql"):
        yield {"FEDERATION_IDEMPOTENCY_STORE": "sql"}
        return

    url = require_redis()
    prefix = f"test:idempotency:{uuid.uuid4().hex}:"
    yield {"FEDERATION_IDEMPOTENCY_STORE": url, "FEDERATION_IDEMPOTENCY_REDIS_PREFIX": prefix}
    delete_redis_keys(url, prefix)


def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete this test's keys only; the Redis database is shared, so it is never flushed."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def make_store_app(make_app: Callable[..., Flask], store_settings: dict[str, Any]) -> Callable[..., Flask]:
    """Return a factory of apps on the backend's database and store; keyword arguments add settings."""

    def factory(**config: Any) -> Flask:
        return make_app(**{**store_settings, **config})

    return factory
