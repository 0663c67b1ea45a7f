"""Reaching the real PostgreSQL and Redis that the tests use, with the skip-or-fail rule.

Outside CI a missing service skips its tests with the reason. Under CI
(``CI=true``) it fails them, because a green run must have used the real service.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get("FEDERATION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FEDERATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    if under_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)")

    pytest.skip(reason)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_postgres() -> str:
    """Return the PostgreSQL test URL, or skip (fail under CI) when the server is unreachable."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        skip_or_fail("psycopg is not installed: pip install -e '.[test]'")

    if not _port_open("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not reachable on 127.0.0.1:5432; start it or set FEDERATION_TEST_POSTGRES_URL")

    return POSTGRES_URL


def require_redis() -> str:
    """Return the Redis test URL, or skip (fail under CI) when the server is unreachable."""
    if not _port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not reachable on 127.0.0.1:6379; start it or set FEDERATION_TEST_REDIS_URL")

    return REDIS_URL
