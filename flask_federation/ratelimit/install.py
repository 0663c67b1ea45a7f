"""Building the rate-limit component in ``init_app``."""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask
from flask_limiter import Limiter
from limits.storage import MemoryStorage

from ..config import RATELIMIT_STORAGE_URI, ConfigurationError, FederationSettings
from ..state import FederationState
from .component import COMPONENT, RateLimits
from .storage import build_limiter
from .workers import detect_worker_processes

logger = logging.getLogger("flask_federation.ratelimit")

LIMITER_COMPONENT = "limiter"


def _resolve_limiter(app: Flask, settings: FederationSettings, host_limiter: Limiter | None) -> Limiter:
    if host_limiter is None:
        return build_limiter(app, settings)

    if host_limiter.enabled and not host_limiter.initialized:
        raise ConfigurationError(
            "The Limiter passed as limiter= is not initialised. "
            "Call limiter.init_app(app) before federation.init_app(app)."
        )

    return host_limiter


def _warn_about_process_local_storage(rate_limits: RateLimits) -> None:
    if not rate_limits.enabled or not isinstance(rate_limits.limiter.storage, MemoryStorage):
        return

    detected = detect_worker_processes(os.environ, sys.argv)
    if detected is None or detected[0] < 2:
        return

    workers, source = detected
    logger.warning(
        "Rate limits use memory:// storage, which counts separately in each process, and %s sets %d worker "
        "processes for this app, so a caller may get up to %d times each limit. "
        "Give every worker the same Redis storage: %s, or the storage_uri of the Limiter passed as limiter=.",
        source,
        workers,
        workers,
        RATELIMIT_STORAGE_URI,
    )


def install_rate_limits(app: Flask, state: FederationState, host_limiter: Limiter | None) -> RateLimits:
    """Create the app's rate-limit component and store it, with its ``Limiter``, in ``state.components``."""
    limiter = _resolve_limiter(app, state.settings, host_limiter)
    rate_limits = RateLimits(limiter, state.settings)
    state.components[LIMITER_COMPONENT] = limiter
    state.components[COMPONENT] = rate_limits
    _warn_about_process_local_storage(rate_limits)
    if not rate_limits.enabled:
        logger.info("Flask-Limiter is disabled on app %r (RATELIMIT_ENABLED), so with_rate_limit counts nothing.", app.name)

    return rate_limits
