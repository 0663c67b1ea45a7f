"""Telling a database that is down or too slow from a bug, and logging such an outage once."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .context import request_state
from .errors import ServiceUnavailable
from .statements import ran_statements

logger = logging.getLogger("flask_federation")

#: Seconds a client should wait after a 503 for an unavailable database.
DATABASE_RETRY_AFTER_SECONDS = 5


def is_database_unavailable(error: BaseException) -> bool:
    """Return whether ``error`` means the database could not serve the request, rather than a bug.

    That is a SQLAlchemy ``OperationalError`` (refused or lost connections, and on
    PostgreSQL a ``statement_timeout`` or ``lock_timeout`` that cancelled a query),
    a connection that SQLAlchemy invalidated, or a pool with no free connection in time.
    """
    if isinstance(error, OperationalError | PoolTimeoutError):
        return True

    return isinstance(error, DBAPIError) and error.connection_invalidated


def describe(error: SQLAlchemyError) -> str:
    """Return the driver's first message line, without the statement and parameters, which may carry request data."""
    cause: BaseException = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    first_line = next(iter(str(cause).strip().splitlines()), "")
    return f"{type(cause).__name__}: {first_line}"


def database_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The database is unavailable or timed out, so the request did not complete. "
        f"Retry after {DATABASE_RETRY_AFTER_SECONDS} seconds; repeat a write with the same Idempotency-Key.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


class DatabaseOutageLog:
    """One warning when requests start failing on the database, and one when a request succeeds again."""

    def __init__(self) -> None:
        self._down = False
        self._lock = threading.Lock()

    def failed(self, error: SQLAlchemyError) -> None:
        request_state()[_FAILED] = True
        with self._lock:
            if self._down:
                return

            self._down = True

        logger.warning(
            "The database is unavailable (%s). Federation requests return 503 until it recovers.", describe(error)
        )

    def succeeded(self) -> None:
        # Read without the lock first: this runs on every successful request.
        if not self._down:
            return

        with self._lock:
            if not self._down:
                return

            self._down = False

        logger.warning("The database is available again.")


#: The outage log of this process; every app in it shares the database connection settings' fate.
OUTAGE_LOG = DatabaseOutageLog()

# Key of the request state: whether a statement of the request failed on the database.
_FAILED = "database_failed"


def note_request_finished(status_code: int) -> None:
    """End a logged outage when the request ran statements, none failed on the database, and it did not fail.

    A response that ran no statement, such as a 401 whose audit event waits in a batch,
    shows nothing about the database. Counting it as a success would log the recovery,
    and then the outage again, for every such response during an outage.
    """
    state = request_state()
    if status_code < 500 and ran_statements() and not state.get(_FAILED):
        OUTAGE_LOG.succeeded()
