"""The SQL and Redis stores directly: claims, owner tokens, expiry and the purge command."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from flask_federation.cli import federation_cli
from flask_federation.idempotency import StoredResponse, get_idempotency_store
from flask_federation.idempotency.store import COMPLETED, IN_PROGRESS, IdempotencyStore
from flask_federation.models import utcnow

RESPONSE = StoredResponse(201, (("Content-Type", "application/json"), ("Location", "/t/1")), b'{"ok": true}\n\x00\xff')


@pytest.fixture
def store_app(make_store_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_store_app(FEDERATION_IDEMPOTENCY_LEASE=5, FEDERATION_IDEMPOTENCY_TTL=60)
    with app.app_context():
        yield app


@pytest.fixture
def store(store_app: Flask) -> IdempotencyStore:
    return get_idempotency_store()


def test_claim_then_record_seen(store: IdempotencyStore) -> None:
    now = utcnow()
    assert store.claim("k1", "fp", "owner-a", now) is None
    record = store.claim("k1", "fp-other", "owner-b", now)
    assert record is not None
    assert record.state == IN_PROGRESS
    assert record.fingerprint == "fp"
    assert record.response is None
    assert record.lease_expires_at == pytest.approx(now + dt.timedelta(seconds=5), abs=dt.timedelta(milliseconds=5))


def test_complete_requires_owner(store: IdempotencyStore) -> None:
    now = utcnow()
    store.claim("k1", "fp", "owner-a", now)
    assert store.complete("k1", "owner-b", RESPONSE, now) is False
    assert store.complete("k1", "owner-a", RESPONSE, now) is True
    assert store.complete("k1", "owner-a", RESPONSE, now) is False
    record = store.claim("k1", "fp", "owner-c", now)
    assert record is not None
    assert record.state == COMPLETED
    assert record.fingerprint == "fp"
    assert record.response == RESPONSE


def test_release_requires_owner(store: IdempotencyStore) -> None:
    now = utcnow()
    store.claim("k1", "fp", "owner-a", now)
    assert store.release("k1", "owner-b") is False
    assert store.claim("k1", "fp", "owner-c", now) is not None
    assert store.release("k1", "owner-a") is True
    assert store.claim("k1", "fp", "owner-c", now) is None


def test_completed_record_not_released(store: IdempotencyStore) -> None:
    now = utcnow()
    store.claim("k1", "fp", "owner-a", now)
    store.complete("k1", "owner-a", RESPONSE, now)
    assert store.release("k1", "owner-a") is False
    record = store.claim("k1", "fp", "owner-b", now)
    assert record is not None
    assert record.response == RESPONSE


def test_keys_independent(store: IdempotencyStore) -> None:
    now = utcnow()
    assert store.claim("k1", "fp", "owner-a", now) is None
    assert store.claim("k2", "fp", "owner-b", now) is None


@pytest.fixture
def expired_store(make_store_app: Callable[..., Flask], backend: str) -> Iterator[tuple[IdempotencyStore, dt.datetime]]:
    """Yield a store whose first claim is already expired, and the time to use for the second claim.

    The SQL store compares expiry with the given time, so a claim made in the past has
    expired. Redis expires keys on its own clock, so its TTL is short and the test waits.
    """
    if backend.endswith("-sql"):
        app = make_store_app(FEDERATION_IDEMPOTENCY_LEASE=5, FEDERATION_IDEMPOTENCY_TTL=60)
        with app.app_context():
            yield get_idempotency_store(), utcnow() - dt.timedelta(seconds=120)
        return

    app = make_store_app(FEDERATION_IDEMPOTENCY_LEASE=0.1, FEDERATION_IDEMPOTENCY_TTL=0.3)
    with app.app_context():
        yield get_idempotency_store(), utcnow()


def _let_redis_expire(backend: str) -> None:
    if backend.endswith("-redis"):
        time.sleep(0.4)


def test_expired_record_replaced_by_claim(expired_store: tuple[IdempotencyStore, dt.datetime], backend: str) -> None:
    store, first_claim_time = expired_store
    store.claim("k1", "fp-old", "owner-a", first_claim_time)
    _let_redis_expire(backend)
    assert store.claim("k1", "fp-new", "owner-b", utcnow()) is None
    record = store.claim("k1", "fp-new", "owner-c", utcnow())
    assert record is not None
    assert record.fingerprint == "fp-new"


def test_stale_owner_cannot_overwrite(expired_store: tuple[IdempotencyStore, dt.datetime], backend: str) -> None:
    store, first_claim_time = expired_store
    store.claim("k1", "fp", "stale-owner", first_claim_time)
    _let_redis_expire(backend)
    store.claim("k1", "fp", "new-owner", utcnow())
    assert store.complete("k1", "stale-owner", RESPONSE, utcnow()) is False
    assert store.release("k1", "stale-owner") is False
    assert store.complete("k1", "new-owner", RESPONSE, utcnow()) is True


def test_purge_command_runs(store_app: Flask, backend: str) -> None:
    result = store_app.test_cli_runner().invoke(federation_cli, ["purge-idempotency"])
    assert result.exit_code == 0
    expected = "Purged 0 expired idempotency keys." if backend.endswith("-sql") else "expires its keys itself"
    assert expected in result.output
