"""Shared fixtures: an app per test on SQLite and on PostgreSQL, clients and credentials."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from flask_federation import Federation, admin, signals
from flask_federation.models import metadata
from flask_federation.state import get_state

from .services import require_postgres, require_redis


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/federation.db"

    return require_postgres()


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """Return a factory of apps with the federation enabled; the tables are dropped afterwards."""
    apps: list[Flask] = []

    def factory(**config: Any) -> Flask:
        app = Flask("federation_test_host")
        app.config.update(
            TESTING=True,
            SECRET_KEY="test-secret",
            SQLALCHEMY_DATABASE_URI=database_url,
            FEDERATION_ENABLED=True,
        )
        app.config.update(config)
        Federation(app)
        with app.app_context():
            metadata.drop_all(get_state().db.engine)
            metadata.create_all(get_state().db.engine)

        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            close_components(app)
            metadata.drop_all(get_state().db.engine)
            get_state().db.engine.dispose()


def close_components(app: Flask) -> None:
    """Close the app's stores and connection pools of its own, and end its session; call in an app context."""
    for component in get_state().components.values():
        close = getattr(component, "close", None)
        if close is not None:
            close()

    get_state().session.remove()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class World:
    """Two providers with tenants and keys, and a developer, created through the admin API."""

    def __init__(self) -> None:
        self.provider_a = admin.create_provider("Provider A")
        self.provider_b = admin.create_provider("Provider B")
        self.developer = admin.create_developer("Developer D")
        self.key_a = admin.issue_key(self.provider_a.public_id, ["tenants:read", "tenants:write", "audit:read"]).key
        self.key_a_read_only = admin.issue_key(self.provider_a.public_id, ["tenants:read"]).key
        self.key_a_no_tenants = admin.issue_key(self.provider_a.public_id, ["audit:read"]).key
        self.key_b = admin.issue_key(self.provider_b.public_id, ["tenants:read", "tenants:write", "audit:read"]).key
        self.key_dev = admin.issue_key(self.developer.public_id, ["diagnostics:read", "audit:read"]).key
        self.key_dev_no_diagnostics = admin.issue_key(self.developer.public_id, ["audit:read"]).key
        self.tenant_a = admin.create_tenant(self.provider_a.public_id, name="A one", slug="a-one", region="eu-west-1")
        self.tenant_b = admin.create_tenant(self.provider_b.public_id, name="B one", slug="b-one", region="us-east-1")


@pytest.fixture
def world(app: Flask) -> World:
    return World()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class StatementCounter:
    """Records the SQL statements an engine runs while active."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    """Return the events that ``audit_event_recorded`` sends while the test runs."""
    events: list[dict[str, Any]] = []

    def receiver(sender: Flask, event: dict[str, Any]) -> None:
        events.append(event)

    signals.audit_event_recorded.connect(receiver)
    yield events
    signals.audit_event_recorded.disconnect(receiver)


@pytest.fixture
def count_statements(app: Flask) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    engine = get_state().db.engine
    event.listen(engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine, "before_cursor_execute", counter)


@pytest.fixture
def redis_rate_limits() -> Iterator[dict[str, str]]:
    """Return settings that keep rate-limit counters in the test Redis under a prefix of this test alone.

    The shared Redis is never flushed: the test's own keys are deleted afterwards.
    """
    url = require_redis()
    prefix = f"test-{uuid.uuid4().hex}"
    yield {"FEDERATION_RATELIMIT_STORAGE_URI": url, "FEDERATION_RATELIMIT_KEY_PREFIX": prefix}
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)

    client.close()
