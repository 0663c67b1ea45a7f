"""What only the SQL store does: purging expired rows, and keeping no client key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_federation.cli import federation_cli
from flask_federation.idempotency import StoredResponse, get_idempotency_store
from flask_federation.models import IDEMPOTENCY_COMPLETED, IdempotencyKey, utcnow
from flask_federation.state import get_state

from ..conftest import World, bearer

RESPONSE = StoredResponse(201, (("Content-Type", "application/json"),), b"{}")


@pytest.fixture(params=["sqlite-sql", "postgresql-sql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_app(make_store_app: Any) -> Iterator[Flask]:
    app = make_store_app()
    with app.app_context():
        yield app


def _rows() -> int:
    return int(get_state().session.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one())


def test_purge_command_deletes_expired(store_app: Flask) -> None:
    store = get_idempotency_store()
    long_ago = utcnow() - dt.timedelta(days=2)
    store.claim("old-1", "fp", "owner", long_ago)
    store.claim("old-2", "fp", "owner", long_ago)
    store.complete("old-2", "owner", RESPONSE, long_ago)
    store.claim("fresh", "fp", "owner", utcnow())
    result = store_app.test_cli_runner().invoke(federation_cli, ["purge-idempotency"])
    assert result.exit_code == 0
    assert "Purged 2 expired idempotency keys." in result.output
    assert _rows() == 1
    again = store_app.test_cli_runner().invoke(federation_cli, ["purge-idempotency"])
    assert "Purged 0 expired idempotency keys." in again.output


def test_row_keeps_no_client_key(store_app: Flask) -> None:
    world = World()
    headers = {**bearer(world.key_a), "Idempotency-Key": "client-chosen-key"}
    body = {"name": "Shop", "slug": "shop", "region": "eu-west-1"}
    store_app.test_client().post("/federation/provider/v1/tenants", json=body, headers=headers)
    row = get_state().session.execute(select(IdempotencyKey)).scalar_one()
    assert row.state == IDEMPOTENCY_COMPLETED
    assert row.response_status == 201
    assert len(row.lookup_key) == 64
    assert "client-chosen-key" not in repr(vars(row))
