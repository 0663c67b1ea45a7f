"""A per-process cache of verified API keys, turned on by ``FEDERATION_CREDENTIAL_CACHE_SECONDS``.

A guarded request whose key was verified recently in this process skips the
credential query. An entry contains the stored SHA-256 hash of the key, never the
key, so the secret is still compared on every request. Revoking a key or
changing its entitlements through :mod:`flask_federation.admin` evicts it from
the cache of the process that made the change. Every other process keeps its
entry until it is ``FEDERATION_CREDENTIAL_CACHE_SECONDS`` old.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from ..config import FederationSettings
from ..entitlements import Audience
from ..state import get_state
from .principal import Principal

logger = logging.getLogger("flask_federation")

COMPONENT = "credential_cache"


@dataclasses.dataclass(frozen=True)
class CachedCredential:
    """One verified API key: what a later request needs to accept it without a query."""

    #: Hex SHA-256 of the key, as stored in the database.
    key_hash: str
    principal: Principal
    expires_at: dt.datetime | None
    #: The key's ``last_used_at`` as the database held it after this verification.
    last_used_at: dt.datetime
    #: Monotonic clock time when the credential query began.
    read_at: float


@dataclasses.dataclass(frozen=True)
class Lookup:
    """The cache state when a credential query began, which :meth:`CredentialCache.put` checks."""

    version: int
    started_at: float


class CredentialCache:
    """A thread-safe LRU of :class:`CachedCredential` keyed by audience and key id, with a TTL.

    ``clock`` returns monotonic seconds. Tests replace it to age entries without sleeping.
    """

    def __init__(self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[tuple[Audience, str], CachedCredential] = collections.OrderedDict()
        # Incremented by every eviction, so that a query that began before one cannot store what it read.
        self._version = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, audience: Audience, key_id: str) -> CachedCredential | None:
        """Return the entry of ``key_id`` when it is younger than the TTL, and mark it recently used."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get((audience, key_id))
            if entry is None:
                return None

            if now - entry.read_at >= self.ttl_seconds:
                del self._entries[(audience, key_id)]
                return None

            self._entries.move_to_end((audience, key_id))
            return entry

    def begin_lookup(self) -> Lookup:
        """Return the state to pass to :meth:`put` once the credential query has run."""
        with self._lock:
            return Lookup(self._version, self.clock())

    def put(
        self,
        lookup: Lookup,
        audience: Audience,
        key_id: str,
        *,
        key_hash: str,
        principal: Principal,
        expires_at: dt.datetime | None,
        last_used_at: dt.datetime,
    ) -> None:
        """Store a key verified by the query that began at ``lookup``, and drop the least recently used beyond the bound.

        Nothing is stored when a key was evicted since ``lookup``: the query may have read it before a revocation.
        """
        entry = CachedCredential(key_hash, principal, expires_at, last_used_at, lookup.started_at)
        with self._lock:
            if self._version != lookup.version:
                return

            self._entries[(audience, key_id)] = entry
            self._entries.move_to_end((audience, key_id))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def evict(self, audience: Audience, key_id: str) -> None:
        with self._lock:
            self._version += 1
            self._entries.pop((audience, key_id), None)

    def clear(self) -> None:
        with self._lock:
            self._version += 1
            self._entries.clear()


def build_credential_cache(settings: FederationSettings) -> CredentialCache | None:
    """Return the cache that ``FEDERATION_CREDENTIAL_CACHE_SECONDS`` turns on, or None when it is 0."""
    ttl_seconds: float = settings.credential_cache_seconds
    if ttl_seconds == 0:
        return None

    logger.info(
        "API key cache on: each worker process reuses a verified key for up to %g s, so a key revoked elsewhere "
        "keeps working that long (at most %d keys per process)",
        ttl_seconds,
        settings.credential_cache_size,
    )
    return CredentialCache(ttl_seconds, settings.credential_cache_size)


def get_credential_cache() -> CredentialCache | None:
    """Return the current app's cache, or None when it is off."""
    cache: CredentialCache | None = get_state().components.get(COMPONENT)
    return cache


def evict_cached_credential(audience: Audience, key_id: str) -> None:
    """Drop ``key_id`` from this process's cache, so that its next request reads the database."""
    cache = get_credential_cache()
    if cache is not None:
        cache.evict(audience, key_id)
