"""The per-app rate-limit component: policies, the ``limits`` strategy, and the storage's health."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from flask_limiter import Limiter
from limits.errors import StorageError

from ..auth.principal import Principal
from ..config import RATELIMIT_POLICIES, ConfigurationError, FederationSettings
from ..state import get_state
from .policies import Policy, audience_policy_name, configured_policies, seconds_until
from .redis_hits import build_redis_hits
from .storage import build_strategy

logger = logging.getLogger("flask_federation.ratelimit")

COMPONENT = "rate_limits"


class StorageUnavailable(Exception):
    """The rate-limit storage failed or timed out; the policy then decides between serving and 503."""


@dataclasses.dataclass(frozen=True)
class WindowState:
    """A caller's standing under one policy, after the current request's hit if it made one."""

    allowed: bool
    remaining: int
    #: Seconds until the strategy frees quota again, as ``limits`` computes it.
    reset_seconds: int


class RateLimits:
    """The rate limiting of one app, kept in ``get_state().components["rate_limits"]``.

    Counting goes through the ``limits`` strategy over the storage of the
    Flask-Limiter ``Limiter`` (the extension's own, or the host's). A disabled
    ``Limiter`` (``RATELIMIT_ENABLED = False``) disables counting here too.
    """

    def __init__(self, limiter: Limiter, settings: FederationSettings) -> None:
        self.limiter = limiter
        self.enabled = bool(limiter.enabled and limiter.initialized)
        self.policies = configured_policies(settings)
        self.key_prefix: str = settings.ratelimit_key_prefix
        self.fail_closed_by_default: bool = settings.ratelimit_fail_closed
        self._strategy = build_strategy(limiter.storage, settings.ratelimit_strategy) if self.enabled else None
        # With Redis storage a hit and its window cost one round trip instead of two or three.
        self._redis_hits = build_redis_hits(limiter.storage, settings.ratelimit_strategy) if self.enabled else None
        storage_errors = limiter.storage.base_exceptions if self.enabled else ()
        self._storage_errors: tuple[type[Exception], ...] = (
            StorageError,
            *(storage_errors if isinstance(storage_errors, tuple) else (storage_errors,)),
        )
        self.storage_name = type(limiter.storage).__name__ if self.enabled else "none"
        self._healthy = True
        self._health_lock = threading.Lock()

    def policy(self, name: str) -> Policy:
        """Return the configured policy ``name``, or raise naming the setting that lacks it."""
        try:
            return self.policies[name]
        except KeyError:
            raise ConfigurationError(
                f"Rate-limit policy {name!r} is not defined. Add it to {RATELIMIT_POLICIES}; "
                f"defined policies: {', '.join(sorted(self.policies))}."
            ) from None

    def fails_closed(self, policy: Policy) -> bool:
        return self.fail_closed_by_default if policy.fail_closed is None else policy.fail_closed

    def hit(self, policy: Policy, key: str, cost: int) -> WindowState:
        """Consume ``cost`` from ``key``'s counter under ``policy`` unless that would exceed the limit.

        Raises :class:`StorageUnavailable` when the storage fails or times out.
        """
        return self._query(policy, key, cost)

    def peek(self, policy: Policy, key: str) -> WindowState:
        """Return ``key``'s standing under ``policy`` without consuming anything."""
        return self._query(policy, key, 0)

    def _query(self, policy: Policy, key: str, cost: int) -> WindowState:
        assert self._strategy is not None, "callers check enabled first"
        identifiers = (self.key_prefix, policy.scope, key)
        try:
            if cost and self._redis_hits is not None:
                allowed, remaining, reset_time = self._redis_hits.hit(policy.item, identifiers, cost)
            else:
                allowed = self._strategy.hit(policy.item, *identifiers, cost=cost) if cost else True
                stats = self._strategy.get_window_stats(policy.item, *identifiers)
                remaining, reset_time = stats.remaining, stats.reset_time
        except self._storage_errors as error:
            self._record_failure(error)
            raise StorageUnavailable(str(error)) from error

        self._record_success()
        return WindowState(allowed, remaining, seconds_until(reset_time, time.time()))

    def _record_failure(self, error: Exception) -> None:
        with self._health_lock:
            if not self._healthy:
                return

            self._healthy = False

        logger.warning(
            "Rate-limit storage %s is unreachable (%s: %s). Until it recovers, rate-limited routes serve requests "
            "without counting them, except under fail-closed policies, which answer 503.",
            self.storage_name,
            type(error).__name__,
            error,
        )

    def _record_success(self) -> None:
        with self._health_lock:
            if self._healthy:
                return

            self._healthy = True

        logger.info("Rate-limit storage %s is reachable again; rate limits are enforced.", self.storage_name)


def get_rate_limits() -> RateLimits:
    """Return the rate-limit component of the current app."""
    rate_limits = get_state().components[COMPONENT]
    assert isinstance(rate_limits, RateLimits)
    return rate_limits


def rate_limit_status(principal: Principal) -> dict[str, Any] | None:
    """Return ``principal``'s standing under its audience policy without consuming a hit.

    Returns ``None`` when rate limiting is disabled or the storage is unreachable.
    """
    rate_limits = get_rate_limits()
    if not rate_limits.enabled:
        return None

    policy = rate_limits.policy(audience_policy_name(principal.audience))
    try:
        state = rate_limits.peek(policy, principal.rate_limit_key)
    except StorageUnavailable:
        return None

    return {"policy": policy.name, "limit": policy.quota, "remaining": state.remaining, "reset": state.reset_seconds}
