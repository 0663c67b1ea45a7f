"""A gunicorn worker killed (SIGKILL) in the middle of an idempotent tenant create.

The key must not stay stuck: within the lease a retry gets 409
``idempotency_key_in_use``, after it 409 ``idempotency_outcome_unknown``, and
after the TTL the key is free again. The handler never runs twice while the
outcome is unknown, and a create that had committed is never repeated.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_federation.models import AuditEvent, Tenant
from flask_federation.state import get_state

from ..services import require_postgres
from .hosts import gunicorn_hosts
from .support import Result, Seeds, create_tenant, seeded_database, wait_for

LEASE_SECONDS = 3
TTL_SECONDS = 6


@pytest.fixture(params=["before", "after"], ids=["killed-before-commit", "killed-after-commit"])
def killable_host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Seeds, Flask, Path, str]]:
    """Serve the app with the first tenant create paused before its write or after its commit."""
    database_url = require_postgres()
    markers = tmp_path / "markers"
    markers.mkdir()
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "FEDERATION_IDEMPOTENCY_STORE": "sql",
        "FEDERATION_IDEMPOTENCY_LEASE": str(LEASE_SECONDS),
        "FEDERATION_IDEMPOTENCY_TTL": str(TTL_SECONDS),
        "RELIABILITY_MARKER_DIR": str(markers),
        "RELIABILITY_CREATE_PAUSE": f"{request.param}:30",
    }
    with seeded_database(database_url) as (app, seeds), gunicorn_hosts(1, settings, tmp_path) as urls:
        yield urls[0], seeds, app, markers, request.param


def _count(app: Flask, slug: str) -> tuple[int, int]:
    """Return the tenants with ``slug`` and their ``tenant.create`` events."""
    with app.app_context():
        session = get_state().session
        tenants = session.execute(select(Tenant.public_id).filter_by(slug=slug)).scalars().all()
        events = 0
        if tenants:
            query = select(func.count()).select_from(AuditEvent).filter_by(action="tenant.create", target_id=tenants[0])
            events = session.execute(query).scalar_one()

        session.remove()
        return len(tenants), events


def _code(result: Result) -> str:
    return str(result.envelope()["error"]["code"])


@pytest.mark.slow
def test_killed_worker_leaves_no_stuck_key(killable_host: tuple[str, Seeds, Flask, Path, str]) -> None:
    base_url, seeds, app, markers, phase = killable_host
    slug = f"killed-{uuid.uuid4().hex[:12]}"
    first: list[Result] = []
    sender = threading.Thread(target=lambda: first.append(create_tenant(base_url, seeds.key_a, slug)))
    sender.start()
    wait_for(lambda: any(markers.iterdir()), 10, "the first create to start")
    if phase == "after":
        wait_for(lambda: _count(app, slug)[0] == 1, 10, "the first create to commit")

    worker = int(next(markers.iterdir()).name.split("-")[0])
    os.kill(worker, signal.SIGKILL)
    sender.join(timeout=20)

    # The client sees the connection drop, never a page or a hang.
    assert first[0].status is None
    assert first[0].error is not None

    in_lease = create_tenant(base_url, seeds.key_a, slug)
    assert in_lease.status == 409
    assert _code(in_lease) == "idempotency_key_in_use"
    assert int(in_lease.headers["Retry-After"]) >= 1

    def outcome_unknown() -> bool:
        return _code(create_tenant(base_url, seeds.key_a, slug)) == "idempotency_outcome_unknown"

    wait_for(outcome_unknown, LEASE_SECONDS + 3, "idempotency_outcome_unknown after the lease")
    unknown = create_tenant(base_url, seeds.key_a, slug)
    assert unknown.status == 409
    assert "lease_expired_at" in unknown.envelope()["error"]["details"]
    assert "Retry-After" not in unknown.headers
    assert len(list(markers.iterdir())) == 1, "the handler ran again while the outcome was unknown"
    committed = 1 if phase == "after" else 0
    assert _count(app, slug) == (committed, committed)

    # After the TTL the key is free: the request runs again, and a committed create is not repeated.
    def reran() -> bool:
        create_tenant(base_url, seeds.key_a, slug)
        return len(list(markers.iterdir())) == 2

    wait_for(reran, TTL_SECONDS + 5, "the key to become reusable after the TTL")
    retried = create_tenant(base_url, seeds.key_a, slug)
    if phase == "before":
        assert retried.status == 201
        assert retried.headers["Idempotent-Replayed"] == "true"
    else:
        assert retried.status == 409
        assert _code(retried) == "conflict"

    assert _count(app, slug) == (1, 1)
