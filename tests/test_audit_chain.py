"""Hash chains: tampering is detected and named, HMAC resists recomputation, concurrent writers never fork."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert, select, update

from flask_federation import record
from flask_federation.audit import Actor
from flask_federation.audit.chain import GENESIS_HASH, event_fields, event_hash
from flask_federation.audit.verify import VerifyReport, verify_chains
from flask_federation.cli import federation_cli
from flask_federation.models import AuditChain, AuditEvent
from flask_federation.state import get_state

from .audit_support import execute_sql

CHAIN = "provider:prv_chaintest"
HMAC_KEY = "k" * 40


def _write_events(count: int, owner_id: str = "prv_chaintest") -> list[AuditEvent]:
    for number in range(count):
        record("test.event", kind="write", owner_id=owner_id, actor=Actor("system", "tests"), changes={"n": number})
        get_state().session.commit()

    return _chain_events()


def _chain_events(chain: str = CHAIN) -> list[AuditEvent]:
    session = get_state().session
    session.rollback()
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.sequence)
    return list(session.execute(query).scalars())


def _verify(hmac_key: str | None = None) -> VerifyReport:
    session = get_state().session
    session.rollback()
    report = verify_chains(session, hmac_key)
    session.rollback()
    return report


def _only_problem(report: VerifyReport) -> Any:
    assert not report.ok
    assert len(report.problems) == 1, report.problems
    problem = report.problems[0]
    assert problem.chain == CHAIN
    return problem


def _set_column(event: AuditEvent, **values: Any) -> None:
    session = get_state().session
    session.rollback()
    with get_state().db.engine.begin() as connection:
        connection.execute(update(AuditEvent).where(AuditEvent.id == event.id).values(**values))


def _insert_row(fields: dict[str, Any]) -> None:
    get_state().session.rollback()
    with get_state().db.engine.begin() as connection:
        connection.execute(insert(AuditEvent).values(**fields))


def _shift_sequences(start: int, by: int) -> None:
    """Renumber the chain's events from ``start`` on by ``by``, in two steps so the unique constraint holds."""
    execute_sql(
        "UPDATE federation_audit_events SET sequence = sequence + 100000 WHERE chain = :chain AND sequence >= :start",
        chain=CHAIN,
        start=start,
    )
    execute_sql(
        "UPDATE federation_audit_events SET sequence = sequence - 100000 + :by WHERE chain = :chain AND sequence >= 100000",
        chain=CHAIN,
        by=by,
    )


def test_untouched_chains_verify(app: Flask) -> None:
    events = _write_events(5)
    assert [event.sequence for event in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    report = _verify()
    assert report.ok
    assert report.events == 5


def test_altered_field_named(app: Flask) -> None:
    events = _write_events(6)
    _set_column(events[3], action="tenant.read")
    problem = _only_problem(_verify())
    assert problem.event_id == events[3].event_id
    assert problem.sequence == 4
    assert "altered" in problem.message


def test_altered_changes_named(app: Flask) -> None:
    events = _write_events(4)
    _set_column(events[1], changes={"n": 99})
    assert _only_problem(_verify()).event_id == events[1].event_id


def test_deleted_middle_event_named(app: Flask) -> None:
    events = _write_events(6)
    execute_sql("DELETE FROM federation_audit_events WHERE id = :id", id=events[2].id)
    problem = _only_problem(_verify())
    assert problem.event_id == events[3].event_id
    assert "sequence 3" in problem.message
    assert "deleted" in problem.message
    assert events[1].event_id in problem.message


def test_deleted_last_event_detected(app: Flask) -> None:
    events = _write_events(4)
    execute_sql("DELETE FROM federation_audit_events WHERE id = :id", id=events[-1].id)
    problem = _only_problem(_verify())
    assert "deleted" in problem.message
    assert problem.sequence == 3


def test_forged_insert_named(app: Flask) -> None:
    events = _write_events(6)
    _shift_sequences(4, 1)
    forged = event_fields(events[2])
    forged.update(event_id="evt_forged", sequence=4, prev_hash=events[2].hash, action="key.revoke")
    forged["hash"] = event_hash(forged, None)
    _insert_row(forged)
    execute_sql(
        "UPDATE federation_audit_chains SET last_sequence = last_sequence + 1 WHERE chain = :chain", chain=CHAIN
    )
    problem = _only_problem(_verify())
    assert problem.event_id == events[3].event_id
    assert "evt_forged" in problem.message
    assert "inserted" in problem.message


def test_reordered_events_named(app: Flask) -> None:
    events = _write_events(6)
    execute_sql("UPDATE federation_audit_events SET sequence = 100 WHERE id = :id", id=events[2].id)
    execute_sql("UPDATE federation_audit_events SET sequence = 3 WHERE id = :id", id=events[3].id)
    execute_sql("UPDATE federation_audit_events SET sequence = 4 WHERE id = :id", id=events[2].id)
    problem = _only_problem(_verify())
    assert problem.event_id == events[3].event_id
    assert problem.sequence == 3


def test_deleted_head_detected(app: Flask) -> None:
    _write_events(2)
    execute_sql("DELETE FROM federation_audit_chains WHERE chain = :chain", chain=CHAIN)
    assert "no head row" in _only_problem(_verify()).message


def test_cli_verify_exit_codes(app: Flask) -> None:
    events = _write_events(3)
    runner = app.test_cli_runner()
    result = runner.invoke(federation_cli, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "Verified" in result.output

    _set_column(events[1], outcome="denied")
    result = runner.invoke(federation_cli, ["audit", "verify"])
    assert result.exit_code == 1
    assert events[1].event_id in result.output
    assert CHAIN in result.output


def _recompute_plain_chain(events: list[AuditEvent], start: int) -> None:
    """Do what an attacker with database access would: rewrite hashes from ``start`` on with plain SHA-256."""
    previous = events[start - 1].hash if start else GENESIS_HASH
    for event in events[start:]:
        fields = event_fields(event)
        fields["prev_hash"] = previous
        previous = event_hash(fields, None)
        _set_column(event, prev_hash=fields["prev_hash"], hash=previous)

    get_state().session.rollback()
    with get_state().db.engine.begin() as connection:
        connection.execute(update(AuditChain).where(AuditChain.chain == CHAIN).values(last_hash=previous))


def test_hmac_resists_recomputed_chain(make_app: Any) -> None:
    app = make_app(FEDERATION_AUDIT_HMAC_KEY=HMAC_KEY)
    with app.app_context():
        events = _write_events(5)
        assert _verify(HMAC_KEY).ok
        assert not _verify(None).ok, "the stored hashes must be HMACs, not plain SHA-256"

        _set_column(events[2], action="tenant.read")
        events = _chain_events()
        _recompute_plain_chain(events, 2)
        problem = _only_problem(_verify(HMAC_KEY))
        assert problem.event_id == events[2].event_id

        result = app.test_cli_runner().invoke(federation_cli, ["audit", "verify"])
        assert result.exit_code == 1
        assert events[2].event_id in result.output


def test_plain_chain_recomputable(app: Flask) -> None:
    """Without a key, someone who can write the database can rewrite the chain; HMAC exists for this."""
    events = _write_events(4)
    _set_column(events[1], action="tenant.read")
    _recompute_plain_chain(_chain_events(), 1)
    assert _verify(None).ok


def test_hmac_detects_forged_append(make_app: Any) -> None:
    app = make_app(FEDERATION_AUDIT_HMAC_KEY=HMAC_KEY)
    with app.app_context():
        events = _write_events(3)
        forged = event_fields(events[-1])
        forged.update(event_id="evt_appended", sequence=4, prev_hash=events[-1].hash)
        forged["hash"] = event_hash(forged, None)
        _insert_row(forged)
        execute_sql(
            "UPDATE federation_audit_chains SET last_sequence = 4, last_hash = :hash WHERE chain = :chain",
            hash=forged["hash"],
            chain=CHAIN,
        )
        assert _only_problem(_verify(HMAC_KEY)).event_id == "evt_appended"


@pytest.mark.parametrize("threads", [8])
def test_concurrent_writers_never_fork(make_app: Any, threads: int) -> None:
    app = make_app()
    per_thread = 20
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                for index in range(per_thread):
                    owner = "prv_chaintest" if index % 4 else None
                    record("test.concurrent", owner_id=owner, actor=Actor("system", f"thread-{number}"))
                    get_state().session.commit()
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=write, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert not any(worker.is_alive() for worker in workers)
    assert errors == []
    with app.app_context():
        provider_events = _chain_events()
        system_events = _chain_events("system")
        assert [event.sequence for event in provider_events] == list(range(1, len(provider_events) + 1))
        assert [event.sequence for event in system_events] == list(range(1, len(system_events) + 1))
        assert len(provider_events) + len(system_events) == threads * per_thread
        assert {event.actor_id for event in provider_events} == {f"thread-{number}" for number in range(threads)}
        report = _verify()
        assert report.ok, report.problems
