"""``AuditBatch``: events of reads and failed requests, written by a background thread in batches.

With ``FEDERATION_AUDIT_BATCH_READS`` the request hook hands such events to the
batch instead of committing each one. A thread per worker process writes what
waits every ``FEDERATION_AUDIT_BATCH_SECONDS``, one transaction per batch and one
head lock per chain in it, which costs far less than a commit per request.

What is given up, and documented: the event commits after its response, and
carries the time it was written. A worker killed before the next write loses the
events that wait, but normal exits write them first (``atexit``). When the
database is down the events keep waiting, up to ``FEDERATION_AUDIT_BATCH_LIMIT``.
Past that limit the hook writes inline again, so a success whose event cannot be
stored still fails.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .. import signals
from ..database_errors import OUTAGE_LOG, is_database_unavailable
from ..state import get_state
from .chain import append_chain_batch, event_to_dict

logger = logging.getLogger("flask_federation.audit")

_COMPONENT = "audit_batch"


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

    def add(self, fields: Mapping[str, Any]) -> bool:
        """Queue an event built by ``build_event``; False when ``limit`` events already wait, and the caller must write it."""
        with self._lock:
            if os.getpid() != self._pid:
                # A forked worker inherits the parent's queue and a thread that no longer runs.
                self._pid, self._thread = os.getpid(), None
                self._waiting.clear()

            if self._closed or len(self._waiting) >= self._limit:
                return False

            self._waiting.append(dict(fields))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flask-federation-audit-batch", daemon=True)
                self._thread.start()

        return True

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def write(self) -> int:
        """Write every waiting event now and return how many were written; on a database error they keep waiting."""
        with self._write_lock:
            with self._lock:
                batch = list(self._waiting)
                self._waiting.clear()

            if not batch:
                return 0

            try:
                stored = self._commit(batch)
            except Exception:
                with self._lock:
                    self._waiting.extendleft(reversed(batch))
                raise

        OUTAGE_LOG.succeeded()
        for values in stored:
            try:
                signals.audit_event_recorded.send(self._app, event=event_to_dict(values))
            except Exception:
                logger.exception("A receiver of audit_event_recorded failed for event %s", values["event_id"])

        return len(stored)

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

    def close(self) -> None:
        """Stop taking events and write those waiting; called at interpreter exit."""
        with self._lock:
            self._closed = True

        self._wake.set()
        try:
            self.write()
        except Exception:
            logger.exception("Audit events waiting at exit could not be written: %d lost", self.waiting)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            if self._closed:
                return

            try:
                self.write()
            except SQLAlchemyError as error:
                if is_database_unavailable(error):
                    OUTAGE_LOG.failed(error)
                else:
                    logger.exception("Failed to write %d batched audit events; retrying", self.waiting)
            except Exception:
                logger.exception("Failed to write %d batched audit events; retrying", self.waiting)


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
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
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
