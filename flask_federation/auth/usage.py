"""Counts of recent authenticated requests per auth method, for the developer diagnostics.

They let a partner see how much of its traffic still uses API keys during the
move to OIDC. Every request that a guard authenticates adds one to the count of
its principal and auth method, in the bucket of the current UTC hour. "Recent"
is the current hour and the 23 before it.

Two stores, chosen by ``FEDERATION_AUTH_USAGE_STORAGE_URI``:

* Redis (``redis://``, ``rediss://``, ``unix://``): one hash per principal and
  hour with one field per auth method, expiring after 25 hours. Shared by all
  workers. When Redis fails, counting pauses for
  :data:`RETRY_AFTER_FAILURE_SECONDS` and the request goes on: counts are
  best effort and never fail a request.
* Memory (unset or ``memory://``): counts of this worker process only, for at
  most :data:`MAX_MEMORY_SUBJECTS` principals (the least recently counted are
  dropped first). Other workers' requests are not included.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Protocol

import redis

from ..config import FederationSettings
from ..state import get_state
from .principal import AUTH_METHOD_API_KEY, AUTH_METHOD_OIDC_BEARER, AUTH_METHOD_OIDC_SESSION, Principal

logger = logging.getLogger("flask_federation.usage")

COMPONENT = "auth_usage"
AUTH_METHODS = (AUTH_METHOD_API_KEY, AUTH_METHOD_OIDC_BEARER, AUTH_METHOD_OIDC_SESSION)
WINDOW_HOURS = 24
MAX_MEMORY_SUBJECTS = 10_000
RETRY_AFTER_FAILURE_SECONDS = 30.0
# Short, because counting runs inside the request: a stalled Redis costs each request at most this, once per pause.
REDIS_TIMEOUT_SECONDS = 0.5
_HOUR_TTL_SECONDS = (WINDOW_HOURS + 1) * 3600


class UsageUnavailable(RuntimeError):
    """The shared store of the counts could not be read."""


class UsageCounter(Protocol):
    #: ``memory`` or ``redis``: where the counts come from, as diagnostics reports it.
    source: str

    def record(self, subject: str, auth_method: str, hour: int) -> None: ...

    def counts(self, subject: str, hour: int) -> dict[str, int]: ...


@dataclasses.dataclass(frozen=True)
class RecentRequests:
    """The counts of one principal over the window, and where they come from."""

    window_seconds: int
    by_auth_method: dict[str, int]
    #: ``memory`` (this worker only), ``redis`` (all workers) or ``unavailable`` (Redis could not be read).
    source: str


class MemoryUsageCounter:
    """Per-process counts; see the module docstring."""

    source = "memory"

    def __init__(self, max_subjects: int = MAX_MEMORY_SUBJECTS) -> None:
        self._max_subjects = max_subjects
        self._lock = threading.Lock()
        self._hours: collections.OrderedDict[str, dict[int, collections.Counter[str]]] = collections.OrderedDict()

    def record(self, subject: str, auth_method: str, hour: int) -> None:
        with self._lock:
            buckets = self._hours.pop(subject, {})
            for old_hour in [bucket for bucket in buckets if bucket <= hour - WINDOW_HOURS]:
                del buckets[old_hour]

            buckets.setdefault(hour, collections.Counter())[auth_method] += 1
            self._hours[subject] = buckets
            while len(self._hours) > self._max_subjects:
                self._hours.popitem(last=False)

    def counts(self, subject: str, hour: int) -> dict[str, int]:
        total: collections.Counter[str] = collections.Counter()
        with self._lock:
            for bucket_hour, counter in self._hours.get(subject, {}).items():
                if bucket_hour > hour - WINDOW_HOURS:
                    total.update(counter)

        return dict(total)


class RedisUsageCounter:
    """Counts shared by all workers through Redis; see the module docstring."""

    source = "redis"

    def __init__(self, url: str, key_prefix: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._key_prefix = key_prefix
        self._paused_until = 0.0
        self._in_outage = False

    def _key(self, subject: str, hour: int) -> str:
        return f"{self._key_prefix}:{subject}:{hour}"

    def record(self, subject: str, auth_method: str, hour: int) -> None:
        if time.monotonic() < self._paused_until:
            return

        try:
            pipeline = self._client.pipeline(transaction=False)
            pipeline.hincrby(self._key(subject, hour), auth_method, 1)
            pipeline.expire(self._key(subject, hour), _HOUR_TTL_SECONDS)
            pipeline.execute()
        except redis.RedisError as error:
            self._fail(error)
            return

        self._recovered()

    def counts(self, subject: str, hour: int) -> dict[str, int]:
        try:
            pipeline = self._client.pipeline(transaction=False)
            for bucket_hour in range(hour - WINDOW_HOURS + 1, hour + 1):
                pipeline.hgetall(self._key(subject, bucket_hour))
            buckets = pipeline.execute()
        except redis.RedisError as error:
            self._fail(error)
            raise UsageUnavailable(str(error)) from None

        self._recovered()
        total: collections.Counter[str] = collections.Counter()
        for bucket in buckets:
            for field, value in bucket.items():
                total[field.decode()] += int(value)

        return dict(total)

    def _fail(self, error: redis.RedisError) -> None:
        self._paused_until = time.monotonic() + RETRY_AFTER_FAILURE_SECONDS
        if not self._in_outage:
            self._in_outage = True
            logger.warning(
                "Counting requests per auth method in Redis failed, so it pauses for %.0f s at a time until Redis responds: %s",
                RETRY_AFTER_FAILURE_SECONDS,
                type(error).__name__,
            )

    def _recovered(self) -> None:
        if self._in_outage:
            self._in_outage = False
            logger.info("Counting requests per auth method in Redis works again")


def build_usage_counter(settings: FederationSettings) -> UsageCounter:
    """Return the counter that ``FEDERATION_AUTH_USAGE_STORAGE_URI`` selects."""
    uri = settings.auth_usage_storage_uri
    if uri is None or uri.startswith("memory://"):
        return MemoryUsageCounter()

    return RedisUsageCounter(uri, settings.auth_usage_key_prefix)


def _current_hour() -> int:
    return int(time.time() // 3600)


def _counter() -> UsageCounter | None:
    counter: UsageCounter | None = get_state().components.get(COMPONENT)
    return counter


def record_authenticated_request(principal: Principal) -> None:
    """Count one request of ``principal`` under its auth method."""
    counter = _counter()
    if counter is not None:
        counter.record(principal.rate_limit_key, principal.auth_method, _current_hour())


def recent_requests_by_auth_method(principal: Principal) -> dict[str, int]:
    """Return the requests of ``principal`` in the window per auth method, with 0 for methods it did not use.

    Raises :class:`UsageUnavailable` when the Redis store cannot be read.
    """
    counter = _counter()
    counts = counter.counts(principal.rate_limit_key, _current_hour()) if counter is not None else {}
    return {method: counts.get(method, 0) for method in sorted({*AUTH_METHODS, *counts})}


def recent_requests(principal: Principal) -> RecentRequests:
    """Return :func:`recent_requests_by_auth_method` with the window and the source, for diagnostics."""
    counter = _counter()
    source = counter.source if counter is not None else "memory"
    try:
        by_auth_method = recent_requests_by_auth_method(principal)
    except UsageUnavailable:
        return RecentRequests(WINDOW_HOURS * 3600, {}, "unavailable")

    return RecentRequests(WINDOW_HOURS * 3600, by_auth_method, source)
