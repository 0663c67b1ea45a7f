"""Helpers for the audit tests: reading events back and tampering with rows through raw SQL."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask
from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from flask_federation.models import AuditEvent
from flask_federation.state import get_state


def all_events() -> list[AuditEvent]:
    """Return every stored event, oldest first, freshly read from the database."""
    session = get_state().session
    session.expire_all()
    return list(session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())


def events_of_request(request_id: str) -> list[AuditEvent]:
    return [event for event in all_events() if event.request_id == request_id]


def only_event(response: Any) -> AuditEvent:
    """Return the one event recorded for ``response``, failing when there are none or several."""
    events = events_of_request(response.headers["X-Request-ID"])
    assert len(events) == 1, [(event.action, event.outcome) for event in events]
    return events[0]


def execute_sql(statement: str, **parameters: Any) -> None:
    """Run ``statement`` in its own committed transaction, as someone with database access would."""
    session = get_state().session
    session.rollback()
    with get_state().db.engine.begin() as connection:
        connection.execute(text(statement), parameters)


@contextlib.contextmanager
def failing_audit_inserts(app: Flask) -> Iterator[list[str]]:
    """Make every INSERT into the audit table fail inside the block, as a full disk or a dropped table would.

    Yields the list of the statements that failed, which grows as they run.
    """
    failed: list[str] = []

    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT INTO FEDERATION_AUDIT_EVENTS" in statement.upper():
            failed.append(statement)
            raise RuntimeError("injected audit failure")

    engine = get_state(app).db.engine
    sa_event.listen(engine, "before_cursor_execute", fail)
    try:
        yield failed
    finally:
        sa_event.remove(engine, "before_cursor_execute", fail)


@dataclasses.dataclass
class Stall:
    """The state of :func:`stalled_audit_inserts`: set ``release`` to let the waiting INSERTs run."""

    waiting: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)


@contextlib.contextmanager
def stalled_audit_inserts(app: Flask) -> Iterator[Stall]:
    """Make every INSERT into the audit table wait inside the block, as on a database that stopped responding.

    Release the stall, and let the stalled INSERTs finish, before the block ends: removing
    the listener while another thread runs it fails that thread's statement.
    """
    stall = Stall()

    def wait(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT INTO FEDERATION_AUDIT_EVENTS" in statement.upper():
            stall.waiting.set()
            stall.release.wait(30)

    engine = get_state(app).db.engine
    sa_event.listen(engine, "before_cursor_execute", wait)
    try:
        yield stall
    finally:
        stall.release.set()
        sa_event.remove(engine, "before_cursor_execute", wait)


@contextlib.contextmanager
def rejecting_audit_inserts(app: Flask, marker: str) -> Iterator[None]:
    """Make every INSERT into the audit table fail inside the block when its parameters contain ``marker``."""

    def reject(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "INSERT INTO FEDERATION_AUDIT_EVENTS" in statement.upper() and marker in str(parameters):
            raise RuntimeError(f"injected rejection of an event containing {marker!r}")

    engine = get_state(app).db.engine
    sa_event.listen(engine, "before_cursor_execute", reject)
    try:
        yield
    finally:
        sa_event.remove(engine, "before_cursor_execute", reject)
