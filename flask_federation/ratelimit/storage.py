"""The Flask-Limiter ``Limiter`` behind the rate limits, and the options of its storage."""

from __future__ import annotations

import urllib.parse
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import Storage
from limits.strategies import STRATEGIES, RateLimiter

from ..config import RATELIMIT_STORAGE_URI, RATELIMIT_STRATEGY, ConfigurationError, FederationSettings
from .keys import request_key

_REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+unix", "valkey", "valkeys", "valkey+unix"})
_CLUSTER_SCHEMES = frozenset({"redis+cluster", "valkey+cluster"})
_SENTINEL_SCHEMES = frozenset({"redis+sentinel", "valkey+sentinel"})


def storage_scheme(uri: str) -> str:
    return urllib.parse.urlparse(uri).scheme


def storage_options(uri: str, timeout: float) -> dict[str, Any]:
    """Return the keyword arguments that bound every storage call of ``uri`` by ``timeout`` seconds.

    redis-py waits for an unresponsive server without limit unless the socket has a
    timeout. Sentinel URIs also connect to the sentinels, which get the same timeout.
    Schemes other than Redis and Valkey get no options.
    """
    scheme = storage_scheme(uri)
    if scheme not in _REDIS_SCHEMES | _CLUSTER_SCHEMES | _SENTINEL_SCHEMES:
        return {}

    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if scheme in _SENTINEL_SCHEMES:
        return {**timeouts, "sentinel_kwargs": dict(timeouts)}

    return timeouts


def build_limiter(app: Flask, settings: FederationSettings) -> Limiter:
    """Create and initialise the extension's own ``Limiter`` on ``app``.

    Flask-Limiter also applies ``RATELIMIT_DEFAULT`` and ``RATELIMIT_APPLICATION``
    from the app config to every ``Limiter`` of the app. The exemptions below keep
    this one from counting host routes a second time; the host's own ``Limiter``
    still applies them.
    """
    uri = settings.ratelimit_storage_uri
    limiter = Limiter(
        key_func=request_key,
        storage_uri=uri,
        storage_options=storage_options(uri, settings.ratelimit_storage_timeout),
        strategy=settings.ratelimit_strategy,
        default_limits_exempt_when=lambda: True,
        application_limits_exempt_when=lambda: True,
    )
    try:
        limiter.init_app(app)
    except LimitsConfigurationError as error:
        # The limits message may quote the URI, and with it a password.
        reason = str(error).replace(uri, "<the URI>")
        raise ConfigurationError(f"{RATELIMIT_STORAGE_URI} cannot be used: {reason}") from None
    except NotImplementedError:
        raise _unsupported_strategy(settings.ratelimit_strategy, storage_scheme(uri)) from None

    return limiter


def build_strategy(storage: Storage, name: str) -> RateLimiter:
    """Return the ``limits`` strategy ``name`` over ``storage``, or raise naming the setting."""
    try:
        return STRATEGIES[name](storage)
    except NotImplementedError:
        raise _unsupported_strategy(name, type(storage).__name__) from None


def _unsupported_strategy(name: str, storage: str) -> ConfigurationError:
    return ConfigurationError(
        f"{RATELIMIT_STRATEGY} is {name!r}, which the rate-limit storage {storage!r} does not support. "
        "Choose another strategy or storage."
    )
