"""FEDERATION_AUDIT_BATCH_READS: events of reads and failures wait for a background writer, writes never do."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, current_app
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from flask_federation import ConfigurationError, Federation, signals, with_audit
from flask_federation.audit import annotate
from flask_federation.audit.batch import AuditBatch, current_batch
from flask_federation.audit.verify import verify_chains
from flask_federation.audit.writer import build_event
from flask_federation.database_errors import OUTAGE_LOG
from flask_federation.state import get_state

from .audit_support import (
    all_events,
    events_of_request,
    failing_audit_inserts,
    only_event,
    rejecting_audit_inserts,
    stalled_audit_inserts,
)
from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"

#: Long enough that the background thread never writes during a test that writes by hand.
NEVER = 3600


@pytest.fixture
def batched_app(make_app: Callable[..., Flask]) -> Any:
    app = make_app(FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=NEVER)
    with app.app_context():
        yield app


def _batch(app: Flask) -> AuditBatch:
    batch = current_batch(app)
    assert batch is not None
    return batch


def _chains_verify() -> None:
    session = get_state().session
    session.rollback()
    report = verify_chains(session, None)
    session.rollback()
    assert report.ok, report.problems


def test_batching_is_off_by_default(app: Flask, world: World) -> None:
    assert current_batch(app) is None
    response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert only_event(response).outcome == "success"


def test_read_event_waits_then_is_written(batched_app: Flask) -> None:
    world = World()
    response = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 200
    assert events_of_request(response.headers["X-Request-ID"]) == []
    assert _batch(batched_app).waiting == 1

    assert _batch(batched_app).write() == 1
    event = only_event(response)
    assert (event.action, event.kind, event.outcome) == ("tenant.list", "read", "success")
    assert event.chain == f"provider:{world.provider_a.public_id}"
    assert event.actor_id == world.provider_a.public_id
    _chains_verify()


def test_write_event_commits_with_the_write(batched_app: Flask) -> None:
    world = World()
    response = batched_app.test_client().post(
        TENANTS,
        json={"name": "Batched", "slug": "batched", "region": "eu-west-1"},
        headers={**bearer(world.key_a), "Idempotency-Key": "batch-write-1"},
    )
    assert response.status_code == 201
    assert only_event(response).kind == "write"
    assert _batch(batched_app).waiting == 0


def test_denials_wait_too(batched_app: Flask) -> None:
    world = World()
    unauthorized = batched_app.test_client().get(TENANTS)
    forbidden = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a_no_tenants))
    assert (unauthorized.status_code, forbidden.status_code) == (401, 403)
    assert _batch(batched_app).write() == 2
    assert only_event(unauthorized).chain == "anonymous"
    assert only_event(forbidden).outcome == "denied"
    _chains_verify()


def test_interleaved_writes_and_batched_reads_keep_the_chain(batched_app: Flask) -> None:
    world = World()
    client = batched_app.test_client()
    for number in range(3):
        client.get(TENANTS, headers=bearer(world.key_a))
        client.post(
            TENANTS,
            json={"name": f"T{number}", "slug": f"t-{number}", "region": "eu-west-1"},
            headers={**bearer(world.key_a), "Idempotency-Key": f"interleaved-{number}"},
        )
    assert _batch(batched_app).write() == 3
    chain = f"provider:{world.provider_a.public_id}"
    sequences = [event.sequence for event in all_events() if event.chain == chain]
    assert sorted(sequences) == list(range(1, len(sequences) + 1))
    _chains_verify()


def test_background_thread_writes_within_the_interval(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=0.05)
    with app.app_context():
        world = World()
        response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
        deadline = time.monotonic() + 10
        while not events_of_request(response.headers["X-Request-ID"]):
            assert time.monotonic() < deadline, "the batched event was not written within 10 seconds"
            time.sleep(0.02)
        assert only_event(response).outcome == "success"


def test_concurrent_requests_leave_gap_free_chains(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=0.01)
    with app.app_context():
        world = World()
        keys = [world.key_a, world.key_b, world.key_a_read_only, "ffp_unknown"]
        statuses: list[int] = []

        def send(key: str) -> None:
            client = app.test_client()
            for _ in range(15):
                statuses.append(client.get(TENANTS, headers=bearer(key)).status_code)

        threads = [threading.Thread(target=send, args=(key,)) for key in keys for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _batch(app).write()
        assert sorted(set(statuses)) == [200, 401]
        request_events = [event for event in all_events() if event.action == "tenant.list"]
        assert len(request_events) == len(statuses) == 120
        _chains_verify()


def test_events_survive_a_failed_write(batched_app: Flask) -> None:
    world = World()
    response = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    batch = _batch(batched_app)
    with failing_audit_inserts(batched_app), pytest.raises(RuntimeError, match="injected"):
        batch.write()
    assert batch.waiting == 1
    assert events_of_request(response.headers["X-Request-ID"]) == []

    assert batch.write() == 1
    assert only_event(response).outcome == "success"
    _chains_verify()


def test_failing_batch_keeps_every_event(batched_app: Flask) -> None:
    world = World()
    responses = [batched_app.test_client().get(TENANTS, headers=bearer(world.key_a)) for _ in range(3)]
    batch = _batch(batched_app)
    with failing_audit_inserts(batched_app), pytest.raises(RuntimeError, match="injected"):
        batch.write()
    assert batch.waiting == 3

    assert batch.write() == 3
    assert [only_event(response).outcome for response in responses] == ["success"] * 3
    _chains_verify()


def test_rejected_event_dropped_others_written(batched_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """An event that the database rejects on its own is logged and dropped instead of holding back the rest."""
    world = World()
    client = batched_app.test_client()
    before = client.get(TENANTS, headers=bearer(world.key_a))
    rejected = client.get(TENANTS, headers={**bearer(world.key_a), "User-Agent": "rejected-agent"})
    after = client.get(TENANTS, headers=bearer(world.key_b))
    batch = _batch(batched_app)

    with rejecting_audit_inserts(batched_app, "rejected-agent"):
        assert batch.write() == 2
    assert batch.waiting == 0
    assert only_event(before).outcome == "success"
    assert only_event(after).outcome == "success"
    assert events_of_request(rejected.headers["X-Request-ID"]) == []
    assert "Dropped batched audit event" in caplog.text
    assert "tenant.list on chain provider:" in caplog.text
    _chains_verify()


def test_full_batch_falls_back_to_inline(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=NEVER, FEDERATION_AUDIT_BATCH_LIMIT=2
    )
    with app.app_context():
        world = World()
        responses = [app.test_client().get(TENANTS, headers=bearer(world.key_a)) for _ in range(3)]
        assert _batch(app).waiting == 2
        assert [len(events_of_request(response.headers["X-Request-ID"])) for response in responses] == [0, 0, 1]


def test_full_batch_during_outage_fails_success_closed(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=NEVER, FEDERATION_AUDIT_BATCH_LIMIT=1
    )
    with app.app_context():
        world = World()
        app.test_client().get(TENANTS, headers=bearer(world.key_a))
        with failing_audit_inserts(app):
            response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
        assert response.status_code == 500
        assert response.json["error"]["code"] == "internal_error"


def test_signal_is_sent_once_written(batched_app: Flask, received: list[dict[str, Any]]) -> None:
    world = World()
    received.clear()  # The world's provisioning events, which commit inline.
    response = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert received == []
    _batch(batched_app).write()
    assert [event["event_id"] for event in received] == [only_event(response).event_id]
    assert received[0]["hash"] == only_event(response).hash


def test_close_writes_what_waits_and_then_writes_inline(batched_app: Flask) -> None:
    world = World()
    first = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    batch = _batch(batched_app)
    batch.close()
    assert only_event(first).outcome == "success"
    second = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert only_event(second).outcome == "success"
    assert batch.waiting == 0


def test_read_route_keeps_its_own_changes(batched_app: Flask) -> None:
    """A host view audited as a read that changes rows still has them committed, as without batching."""

    def touch() -> dict[str, bool]:
        get_state().session.execute(text("CREATE TABLE IF NOT EXISTS batch_touch (id INTEGER)"))
        get_state().session.execute(text("INSERT INTO batch_touch (id) VALUES (1)"))
        return {"touched": True}

    batched_app.add_url_rule("/touch", "touch", with_audit("host.touch")(touch))
    try:
        assert batched_app.test_client().get("/touch").status_code == 200
        with get_state().db.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM batch_touch")).scalar_one() == 1
    finally:
        get_state().session.rollback()
        with get_state().db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS batch_touch"))


def test_in_memory_sqlite_writes_inline(caplog: pytest.LogCaptureFixture) -> None:
    app = Flask("batch_in_memory")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_ENABLED=True, FEDERATION_AUDIT_BATCH_READS=True)
    Federation(app)
    assert current_batch(app) is None
    assert "FEDERATION_AUDIT_BATCH_READS is ignored" in caplog.text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FEDERATION_AUDIT_BATCH_SECONDS", 0),
        ("FEDERATION_AUDIT_BATCH_SECONDS", "soon"),
        ("FEDERATION_AUDIT_BATCH_LIMIT", 0),
        ("FEDERATION_AUDIT_BATCH_READS", "maybe"),
    ],
)
def test_invalid_batch_settings_are_rejected(key: str, value: Any) -> None:
    app = Flask("batch_settings")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_ENABLED=True, **{key: value})

    with pytest.raises(ConfigurationError, match=key):
        Federation(app)


@pytest.mark.parametrize("batched", [False, True], ids=["inline", "batched"])
def test_result_count_beyond_column_fails_closed(make_app: Callable[..., Flask], batched: bool) -> None:
    """A count that the 32-bit column cannot store fails its own request instead of every batch after it."""
    app = make_app(FEDERATION_AUDIT_BATCH_READS=batched, FEDERATION_AUDIT_BATCH_SECONDS=NEVER)

    def count_everything() -> dict[str, bool]:
        annotate(result_count=2**31)
        return {"counted": True}

    app.add_url_rule("/count", "count", with_audit("host.count")(count_everything))
    with app.app_context():
        world = World()
        huge = app.test_client().get("/count")
        normal = app.test_client().get(TENANTS, headers=bearer(world.key_a))
        batch = current_batch(app)
        if batch is not None:
            assert batch.write() == 1

        assert huge.status_code == 500
        assert events_of_request(huge.headers["X-Request-ID"]) == []
        assert only_event(normal).outcome == "success"
        _chains_verify()


def test_close_gives_up_on_stalled_write(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    """Exit waits a bounded time for a write that hangs, because a stalled database would block it forever."""
    app = make_app(FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=0.01)
    with app.app_context():
        world = World()
        batch = _batch(app)
        with stalled_audit_inserts(app) as stall:
            response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
            assert stall.waiting.wait(10), "the writer thread did not start its INSERT"

            closer = threading.Thread(target=batch.close, kwargs={"timeout": 0.2})
            started = time.monotonic()
            closer.start()
            closer.join(10)
            assert not closer.is_alive(), "close() still waits for the stalled write"
            assert time.monotonic() - started < 5

            # Released, the write finishes in the writer thread, which then stops.
            stall.release.set()
            writer = batch._thread
            assert writer is not None
            writer.join(10)
            assert not writer.is_alive()

        assert only_event(response).outcome == "success"

    lost = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert lost == ["Audit events were not written within 0.2 s of exit, so 1 is lost; is the database stalled?"]


def test_failing_writer_logs_once_until_recovery(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=0.01)
    with app.app_context():
        world = World()
        with failing_audit_inserts(app) as failed:
            response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
            deadline = time.monotonic() + 10
            while len(failed) < 10:
                assert time.monotonic() < deadline, "the writer thread did not retry"
                time.sleep(0.01)

        deadline = time.monotonic() + 10
        while not events_of_request(response.headers["X-Request-ID"]):
            assert time.monotonic() < deadline, "the event was not written after the failure ended"
            time.sleep(0.02)

    messages = [record.getMessage() for record in caplog.records if record.name == "flask_federation.audit"]
    failures = [message for message in messages if message.startswith("Failed to write")]
    recoveries = [message for message in messages if message.startswith("Wrote")]
    assert len(failures) == 1
    assert len(recoveries) == 1
    assert "failed attempts" in recoveries[0]


def test_signal_receivers_get_app_context(batched_app: Flask) -> None:
    """Receivers of batched events can use current_app, as receivers of events written inline can."""
    world = World()
    senders: list[Flask] = []

    def receiver(sender: Flask, event: dict[str, Any]) -> None:
        senders.append(current_app._get_current_object())  # type: ignore[attr-defined]

    batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    signals.audit_event_recorded.connect(receiver)
    try:
        # The writer thread has no context of its own, unlike this test.
        writer = threading.Thread(target=_batch(batched_app).write)
        writer.start()
        writer.join(10)
    finally:
        signals.audit_event_recorded.disconnect(receiver)
    assert senders == [batched_app]


def test_forked_child_leaves_parent_events(batched_app: Flask) -> None:
    """A process forked while events wait, as gunicorn --preload forks its workers, does not write them again at exit."""
    world = World()
    response = batched_app.test_client().get(TENANTS, headers=bearer(world.key_a))
    batch = _batch(batched_app)
    get_state().session.remove()
    with warnings.catch_warnings():
        # Python 3.12 warns that forking a process with threads may deadlock; the child only closes the batch.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        try:
            get_state(batched_app).db.engine.dispose(close=False)
            batch.close()
        finally:
            os._exit(0)

    os.waitpid(child, 0)
    assert batch.write() == 1
    assert only_event(response).outcome == "success"
    _chains_verify()


def test_limit_counts_events_being_written(make_app: Callable[..., Flask]) -> None:
    """While a write is under way its events still count, so no more than the limit are ever held."""
    app = make_app(
        FEDERATION_AUDIT_BATCH_READS=True, FEDERATION_AUDIT_BATCH_SECONDS=0.01, FEDERATION_AUDIT_BATCH_LIMIT=2
    )
    with app.app_context():
        world = World()
        batch = _batch(app)
        with stalled_audit_inserts(app) as stall:
            for _ in range(2):
                app.test_client().get(TENANTS, headers=bearer(world.key_a))
            assert stall.waiting.wait(10), "the writer thread did not start its INSERT"

            with app.test_request_context("/"):
                accepted = batch.add(build_event("probe.read"))
            stall.release.set()
            batch.close()

        assert not accepted


def test_denial_without_query_keeps_outage_logged(batched_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """A response that ran no query, as a 401 whose event waits, does not log the database as available again.

    Otherwise every such response during an outage would log that, and the writer's next failure the outage again.
    """
    world = World()
    OUTAGE_LOG.failed(OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused")))
    try:
        assert batched_app.test_client().get(TENANTS).status_code == 401
        recoveries = [record for record in caplog.records if record.getMessage() == "The database is available again."]
        assert recoveries == []
    finally:
        # A request that queries ends the outage, which the other tests of this process need.
        assert batched_app.test_client().get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    recoveries = [record for record in caplog.records if record.getMessage() == "The database is available again."]
    assert len(recoveries) == 1
