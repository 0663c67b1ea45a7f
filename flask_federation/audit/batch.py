"""``AuditBatch``: events of reads and failed requests, written by a background thread in batches.

With ``FEDERATION_AUDIT_BATCH_READS`` the request hook hands such events to the
batch instead of committing each one. A thread per worker process writes what
waits every ``FEDERATION_AUDIT_BATCH_SECONDS``, one transaction per batch and one
head lock per chain in it, which costs far less than a commit per request.

What is given up, and documented: the event commits after its response, and
carries the time it was written. A worker killed before the next write loses the
events that wait, but normal exits write them first (``atexit``), waiting at most
``CLOSE_TIMEOUT_SECONDS`` for the database. When the database is down the events
keep waiting, up to ``FEDERATION_AUDIT_BATCH_LIMIT``. Past that limit the hook
writes inline again, so a success whose event cannot be stored still fails.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any, TypeGuard

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .. import signals
from ..database_errors import OUTAGE_LOG, is_database_unavailable
from ..state import get_state, is_in_memory_sqlite
from .chain import append_chain_batch, event_to_dict

logger = logging.getLogger("flask_federation.audit")

_COMPONENT = "audit_batch"

#: Maximum seconds that interpreter exit waits for the queued events to be written, so that a stalled
#: database, which may never respond, cannot keep a worker process from exiting.
CLOSE_TIMEOUT_SECONDS = 10.0


class AuditBatch:
    """Events waiting to be written for one app in this process, and the thread that writes them."""

    def __init__(self, app: Flask, *, interval: float, limit: int, hmac_key: str | None) -> None:
        self._app = app
        self._interval = interval
        self._limit = limit
        self._hmac_key = hmac_key
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._waiting: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        # Events taken out of the queue by a write that has not finished, counted against ``limit`` and when lost at exit.
        self._writing = 0
        # Consecutive failed writes of the thread, and whether one was logged, so that a lasting error logs once.
        self._failed_writes = 0
        self._failure_logged = False

    def add(self, fields: Mapping[str, Any]) -> bool:
        """Queue an event built by ``build_event``; False when ``limit`` events already wait, and the caller must write it."""
        with self._lock:
            self._forget_parent_process()
            # Events that a write has taken but not yet committed count too: they are still held here.
            if self._closed or len(self._waiting) + self._writing >= self._limit:
                return False

            self._waiting.append(dict(fields))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flask-federation-audit-batch", daemon=True)
                self._thread.start()

        return True

    def _forget_parent_process(self) -> None:
        """Drop the queue and thread that a forked process inherits; the caller must hold ``_lock``.

        The parent writes its own events, so a child that wrote them too would store
        them twice, or fail on their ``event_id`` and keep failing.
        """
        if os.getpid() != self._pid:
            self._pid, self._thread = os.getpid(), None
            self._waiting.clear()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def write(self) -> int:
        """Write every waiting event now and return how many were written; on a database error they keep waiting.

        When a batch fails for another reason than an outage, its events are written
        one at a time. An event that fails alone while others succeed is logged and
        dropped, so that one event the database rejects cannot hold back all the others.
        """
        with self._write_lock:
            with self._lock:
                batch = list(self._waiting)
                self._waiting.clear()
                self._writing = len(batch)

            if not batch:
                return 0

            try:
                stored = self._commit(batch)
            except Exception as error:
                if len(batch) == 1 or _is_outage(error):
                    self._requeue(batch)
                    raise

                stored, unwritten, rejected = self._commit_each(batch)
                if not stored:
                    # Nothing could be written: the cause is the database or the table, not an event.
                    self._requeue(batch)
                    raise

                self._requeue(unwritten)
                for fields in rejected:
                    logger.error(
                        "Dropped batched audit event %s (%s on chain %s): the database rejected it, "
                        "while other events of its batch were written",
                        fields["event_id"],
                        fields["action"],
                        fields["chain"],
                    )
            finally:
                with self._lock:
                    self._writing = 0

        OUTAGE_LOG.succeeded()
        # In an app context, as receivers of events written by a request get: they may use current_app.
        with self._app.app_context():
            for values in stored:
                try:
                    signals.audit_event_recorded.send(self._app, event=event_to_dict(values))
                except Exception:
                    logger.exception("A receiver of audit_event_recorded failed for event %s", values["event_id"])

        return len(stored)

    def _requeue(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._waiting.extendleft(reversed(events))

    def _commit_each(
        self, batch: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Commit the events one at a time; return those stored, those left unwritten by an outage, and those rejected."""
        stored: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for position, fields in enumerate(batch):
            try:
                stored.extend(self._commit([fields]))
            except Exception as error:
                if _is_outage(error):
                    return stored, batch[position:], rejected

                rejected.append(fields)

        return stored, [], rejected

    def _commit(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        chains: dict[str, list[dict[str, Any]]] = {}
        for fields in batch:
            chains.setdefault(fields["chain"], []).append(fields)

        with self._app.app_context():
            session = get_state(self._app).session
            try:
                # Every batch locks its chains in name order, so the batches of two worker processes cannot deadlock.
                stored = [
                    values
                    for chain in sorted(chains)
                    for values in append_chain_batch(session, chain, chains[chain], self._hmac_key)
                ]
                session.commit()
            except Exception:
                session.rollback()
                raise

        return stored

    def close(self, timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Stop taking events and let the thread write the queued ones, for at most ``timeout`` seconds.

        Called at interpreter exit. Events still unwritten after ``timeout`` are lost, and logged as such.
        """
        with self._lock:
            self._forget_parent_process()
            self._closed = True
            thread = self._thread

        self._wake.set()
        if thread is None:
            return  # No event was queued in this process.

        thread.join(timeout)
        if thread.is_alive():
            lost = self._writing + self.waiting
            logger.error(
                "Audit events were not written within %g s of exit, so %d %s lost; is the database stalled?",
                timeout,
                lost,
                "is" if lost == 1 else "are",
            )

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            if self._closed:
                self._write_at_exit()
                return

            self._write_and_log()

    def _write_at_exit(self) -> None:
        try:
            self.write()
        except Exception:
            logger.exception("Audit events waiting at exit could not be written: %d lost", self.waiting)

    def _write_and_log(self) -> None:
        """Write the queued events, and log a lasting failure once when it starts and once when a write succeeds again."""
        try:
            written = self.write()
        except Exception as error:
            self._failed_writes += 1
            if _is_outage(error):
                OUTAGE_LOG.failed(error)
            elif not self._failure_logged:
                self._failure_logged = True
                logger.exception(
                    "Failed to write %d batched audit events; retrying every %g s, logged again once a write succeeds",
                    self.waiting,
                    self._interval,
                )
            return

        if self._failure_logged:
            logger.warning("Wrote %d batched audit events after %d failed attempts", written, self._failed_writes)
        self._failed_writes = 0
        self._failure_logged = False


def _is_outage(error: Exception) -> TypeGuard[SQLAlchemyError]:
    return isinstance(error, SQLAlchemyError) and is_database_unavailable(error)


_OPEN: weakref.WeakSet[AuditBatch] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for batch in list(_OPEN):
        batch.close()


def install(app: Flask) -> None:
    settings = get_state(app).settings
    if not (settings.audit_enabled and settings.audit_batch_reads):
        return

    with app.app_context():
        url = get_state(app).db.engine.url
    if is_in_memory_sqlite(url):
        logger.warning(
            "FEDERATION_AUDIT_BATCH_READS is ignored: an in-memory SQLite database lives on one connection, "
            "which the writer thread cannot share. Audit events are written by each request."
        )
        return

    batch = AuditBatch(
        app,
        interval=settings.audit_batch_seconds,
        limit=settings.audit_batch_limit,
        hmac_key=settings.audit_hmac_key,
    )
    get_state(app).components[_COMPONENT] = batch
    _OPEN.add(batch)
    logger.info(
        "Audit events of reads are written in batches every %.3g s (up to %d waiting per process)",
        settings.audit_batch_seconds,
        settings.audit_batch_limit,
    )


def current_batch(app: Flask | None = None) -> AuditBatch | None:
    """Return the app's audit batch, or None when ``FEDERATION_AUDIT_BATCH_READS`` is off."""
    batch = get_state(app).components.get(_COMPONENT)
    assert batch is None or isinstance(batch, AuditBatch)
    return batch
