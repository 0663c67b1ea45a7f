"""The idempotency store protocol, its records, and the choice of store from the settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Protocol

from ..config import FederationSettings

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

logger = logging.getLogger("flask_federation.idempotency")

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class StoreUnavailable(Exception):
    """The idempotency store could not be reached or failed; the request must not run."""


@dataclasses.dataclass(frozen=True)
class StoredResponse:
    """The part of a response that a replay repeats: status, allow-listed headers and the exact body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclasses.dataclass(frozen=True)
class IdempotencyRecord:
    """A key that some request already claimed, as a later request finds it."""

    fingerprint: str
    state: str
    lease_expires_at: dt.datetime
    expires_at: dt.datetime
    response: StoredResponse | None


class IdempotencyStore(Protocol):
    """A backend for claims and stored responses. Every method raises :class:`StoreUnavailable` on failure.

    ``lookup_key`` is the scoped hash from :func:`~.keys.lookup_key`; ``owner`` is the
    random token of the claiming request. A store never hands a key with an unexpired
    record to a second owner.
    """

    #: Short name for messages and logs, such as ``sql`` or ``redis``.
    name: str

    def claim(self, lookup_key: str, fingerprint: str, owner: str, now: dt.datetime) -> IdempotencyRecord | None:
        """Claim the key for ``owner`` and return None, or return the record that already holds it.

        A record past its ``expires_at`` does not hold the key: the claim replaces it.
        """

    def complete(self, lookup_key: str, owner: str, response: StoredResponse, now: dt.datetime) -> bool:
        """Store ``response`` for the key if ``owner`` still holds the claim; return whether it did."""

    def release(self, lookup_key: str, owner: str) -> bool:
        """Delete the unfinished claim if ``owner`` holds it, so that a retry runs again; return whether it did."""

    def purge_expired(self, now: dt.datetime) -> int:
        """Delete the records past their expiry and return how many were deleted."""

    def close(self) -> None:
        """Close the store's connections."""


class OutageLog:
    """A once-per-outage log: one warning when a store fails, and one when it responds again."""

    def __init__(self, store_name: str) -> None:
        self._store_name = store_name
        self._down = False
        self._lock = threading.Lock()

    def failed(self, reason: str) -> None:
        with self._lock:
            if self._down:
                return

            self._down = True

        logger.warning(
            "The %s idempotency store is unavailable (%s). Routes that require an Idempotency-Key "
            "answer 503 until it recovers.",
            self._store_name,
            reason,
        )

    def succeeded(self) -> None:
        with self._lock:
            if not self._down:
                return

            self._down = False

        logger.warning("The %s idempotency store is available again.", self._store_name)


def build_store(settings: FederationSettings, db: SQLAlchemy) -> IdempotencyStore:
    """Return the store that ``FEDERATION_IDEMPOTENCY_STORE`` selects. Nothing connects until first use."""
    lease = dt.timedelta(seconds=settings.idempotency_lease)
    ttl = dt.timedelta(seconds=settings.idempotency_ttl)
    if settings.idempotency_store == "sql":
        from .sql_store import SqlIdempotencyStore

        return SqlIdempotencyStore(db, lease=lease, ttl=ttl)

    from .redis_store import RedisIdempotencyStore

    return RedisIdempotencyStore(
        settings.idempotency_store, prefix=settings.idempotency_redis_prefix, lease=lease, ttl=ttl
    )
