"""Counting the database writes of a request, to tell a rejected request from one that acted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from ..context import request_state

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

_COUNTER = "database_writes"


def _count_write() -> None:
    state = request_state()
    state[_COUNTER] = state.get(_COUNTER, 0) + 1


def _after_flush(session: Session, flush_context: Any) -> None:
    if session.new or session.dirty or session.deleted:
        _count_write()


def _do_orm_execute(execute_state: ORMExecuteState) -> None:
    if execute_state.is_insert or execute_state.is_update or execute_state.is_delete:
        _count_write()


def track_database_writes(db: SQLAlchemy) -> None:
    """Count, per request, the flushes and ORM-enabled INSERT, UPDATE and DELETE statements of ``db``'s sessions.

    Raw SQL text and writes through other connections are not seen.
    """
    session = db.session
    for name, listener in (("after_flush", _after_flush), ("do_orm_execute", _do_orm_execute)):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)


def database_write_count() -> int:
    """Return how many writes :func:`track_database_writes` has counted in this request so far."""
    return int(request_state().get(_COUNTER, 0))
