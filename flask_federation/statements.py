"""The statements a request ran through the session: whether it ran any, and how many wrote.

The idempotency guard uses the write count to distinguish a rejected request from
one that acted. The database outage log ends an outage only after a request that
ran statements.
Both read one pair of session listeners, so each statement is noted once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from .context import request_state

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

_COUNTER = "database_writes"
_QUERIED = "database_queried"


def _count_write() -> None:
    state = request_state()
    state[_COUNTER] = state.get(_COUNTER, 0) + 1


def _after_flush(session: Session, flush_context: Any) -> None:
    if session.new or session.dirty or session.deleted:
        _count_write()


def _do_orm_execute(execute_state: ORMExecuteState) -> None:
    request_state()[_QUERIED] = True
    if execute_state.is_insert or execute_state.is_update or execute_state.is_delete:
        _count_write()


def track_statements(db: SQLAlchemy) -> None:
    """Note, per request, whether ``db``'s sessions ran statements, and count flushes and ORM-enabled writes.

    Raw SQL text counts as a statement but never as a write, and statements through other connections are not seen.
    """
    session = db.session
    for name, listener in (("after_flush", _after_flush), ("do_orm_execute", _do_orm_execute)):
        if not event.contains(session, name, listener):
            event.listen(session, name, listener)


def database_write_count() -> int:
    """Return how many writes :func:`track_statements` has counted in this request so far."""
    return int(request_state().get(_COUNTER, 0))


def ran_statements() -> bool:
    """Return whether the current request ran a statement through the session."""
    return bool(request_state().get(_QUERIED))
