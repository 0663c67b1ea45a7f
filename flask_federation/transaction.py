"""One helper for write paths: commit on success, roll back on any exception."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session

from .state import get_state


@contextlib.contextmanager
def transaction(session: Session | None = None) -> Iterator[Session]:
    """Commit ``session`` (default: the federation session) when the block succeeds; roll back when it raises.

    Unlike ``session.begin()``, it also works when the session has already begun a
    transaction, as it does after any query. A write and the audit event that
    :func:`~flask_federation.audit.record` adds inside the block commit together,
    and a failing audit write rolls the write back.
    """
    active = session if session is not None else get_state().session
    try:
        yield active
        active.commit()
    except BaseException:
        active.rollback()
        raise


@contextlib.contextmanager
def savepoint(session: Session | None = None) -> Iterator[Session]:
    """Run the block in a SAVEPOINT of the session's transaction, rolling back only the block on error.

    Python's sqlite3 driver opens a transaction before INSERT, UPDATE and DELETE but
    not before SAVEPOINT, and SQLite then treats the RELEASE of an outermost savepoint
    as a COMMIT. Starting the transaction first keeps the block's writes uncommitted
    until the caller commits, as on PostgreSQL.
    """
    active = session if session is not None else get_state().session
    connection = active.connection()
    if connection.dialect.name == "sqlite":
        driver_connection = connection.connection.driver_connection
        if driver_connection is not None and not driver_connection.in_transaction:
            connection.exec_driver_sql("BEGIN")

    with active.begin_nested():
        yield active
