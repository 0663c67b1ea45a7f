"""Batched audit events under gunicorn and through an outage: none lost, chains intact, written at a graceful stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_federation.audit.batch import current_batch
from flask_federation.cli import federation_cli
from flask_federation.models import AuditEvent
from flask_federation.state import get_state

from ..services import require_postgres
from .clusters import own_postgres
from .hosts import gunicorn_hosts
from .support import TENANTS, Seeds, create_tenant, seeded_database, send, setup_app, wait_for


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Flask, Seeds]]:
    with seeded_database(require_postgres()) as seeded:
        yield seeded


def _settings(app: Flask, seconds: float) -> dict[str, str]:
    return {
        "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        "FEDERATION_AUDIT_BATCH_READS": "true",
        "FEDERATION_AUDIT_BATCH_SECONDS": str(seconds),
    }


def _count(app: Flask, action: str) -> int:
    with app.app_context():
        session = get_state().session
        count = session.execute(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)).scalar_one()
        session.remove()
        return int(count)


def test_batched_events_from_two_hosts_verify(database: tuple[Flask, Seeds], tmp_path: Path) -> None:
    app, seeds = database
    seeded_creates = _count(app, "tenant.create")
    with gunicorn_hosts(2, _settings(app, 0.05), tmp_path) as urls, ThreadPoolExecutor(max_workers=8) as pool:
        reads = list(pool.map(lambda number: send("GET", urls[number % 2] + TENANTS, seeds.key_a), range(80)))
        writes = list(pool.map(lambda number: create_tenant(urls[number % 2], seeds.key_a), range(10)))
        assert {result.status for result in reads} == {200}
        assert {result.status for result in writes} == {201}
        wait_for(lambda: _count(app, "tenant.list") == 80, 20, "80 batched tenant.list events")

    assert _count(app, "tenant.create") == seeded_creates + 10
    verify = app.test_cli_runner().invoke(federation_cli, ["audit", "verify"])
    assert verify.exit_code == 0, verify.output


def test_graceful_stop_writes_waiting_events(database: tuple[Flask, Seeds], tmp_path: Path) -> None:
    app, seeds = database
    with gunicorn_hosts(1, _settings(app, 3600), tmp_path) as urls:
        results = [send("GET", urls[0] + TENANTS, seeds.key_a) for _ in range(30)]
        assert {result.status for result in results} == {200}
        assert _count(app, "tenant.list") == 0

    assert _count(app, "tenant.list") == 30
    verify = app.test_cli_runner().invoke(federation_cli, ["audit", "verify"])
    assert verify.exit_code == 0, verify.output


@pytest.mark.slow
def test_outage_keeps_events_until_recovery(caplog: pytest.LogCaptureFixture) -> None:
    """Events queued while PostgreSQL is stopped are all written once it is back, with one warning each way."""
    caplog.set_level(logging.WARNING, logger="flask_federation")
    with own_postgres() as cluster, seeded_database(cluster.url) as (setup, seeds):
        app = setup_app(cluster.url, FEDERATION_AUDIT_BATCH_READS="true", FEDERATION_AUDIT_BATCH_SECONDS="0.05")
        batch = current_batch(app)
        assert batch is not None
        client = app.test_client()
        try:
            before = client.get(TENANTS, headers={"Authorization": f"Bearer {seeds.key_a}"})
            assert before.status_code == 200
            wait_for(lambda: batch.waiting == 0, 10, "the event queued before the outage to be written")

            cluster.stop("fast")
            # A request without a key needs no query, so it is denied and queues its event during the outage.
            denied = [client.get(TENANTS) for _ in range(50)]
            assert {response.status_code for response in denied} == {401}
            time.sleep(0.5)
            assert batch.waiting == 50

            cluster.start()
            wait_for(lambda: batch.waiting == 0, 20, "the queued events to be written after the restart")
        finally:
            with app.app_context():
                get_state().db.engine.dispose()

        request_ids = [response.headers["X-Request-ID"] for response in [before, *denied]]
        with setup.app_context():
            session = get_state().session
            stored = session.execute(select(AuditEvent.request_id).where(AuditEvent.request_id.in_(request_ids)))
            assert sorted(stored.scalars()) == sorted(request_ids)
            session.remove()

        verify = setup.test_cli_runner().invoke(federation_cli, ["audit", "verify"])
        assert verify.exit_code == 0, verify.output

    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("The database is unavailable")
    assert warnings[1] == "The database is available again."
