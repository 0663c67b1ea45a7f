"""Counts of recent requests per auth method: the in-process store, the Redis store, and diagnostics."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from flask_federation.auth.usage import WINDOW_HOURS, MemoryUsageCounter, RedisUsageCounter, UsageUnavailable

from .conftest import World, bearer
from .services import require_redis
from .test_oidc_config import closed_loopback_url

DIAGNOSTICS = "/federation/developer/v1/diagnostics"
HOUR = 500_000


def test_memory_counts_window_only() -> None:
    counter = MemoryUsageCounter()
    counter.record("developer:dev_a", "api_key", HOUR - WINDOW_HOURS)
    counter.record("developer:dev_a", "api_key", HOUR - WINDOW_HOURS + 1)
    counter.record("developer:dev_a", "oidc_bearer", HOUR)
    counter.record("developer:dev_a", "oidc_bearer", HOUR)

    assert counter.counts("developer:dev_a", HOUR) == {"api_key": 1, "oidc_bearer": 2}
    assert counter.counts("developer:dev_b", HOUR) == {}


def test_memory_drops_least_recent_subject() -> None:
    counter = MemoryUsageCounter(max_subjects=2)
    counter.record("developer:first", "api_key", HOUR)
    counter.record("developer:second", "api_key", HOUR)
    counter.record("developer:first", "api_key", HOUR)
    counter.record("developer:third", "api_key", HOUR)

    assert counter.counts("developer:second", HOUR) == {}
    assert counter.counts("developer:first", HOUR) == {"api_key": 2}
    assert counter.counts("developer:third", HOUR) == {"api_key": 1}


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"federation-test:{secrets.token_hex(8)}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_redis_counts_window_and_expiry(redis_url: str, key_prefix: str) -> None:
    counter = RedisUsageCounter(redis_url, key_prefix)
    counter.record("developer:dev_a", "api_key", HOUR - WINDOW_HOURS)
    counter.record("developer:dev_a", "api_key", HOUR - 1)
    counter.record("developer:dev_a", "oidc_session", HOUR)

    assert counter.counts("developer:dev_a", HOUR) == {"api_key": 1, "oidc_session": 1}
    ttl = redis.Redis.from_url(redis_url).ttl(f"{key_prefix}:developer:dev_a:{HOUR}")
    assert 0 < ttl <= (WINDOW_HOURS + 1) * 3600


def test_redis_counts_shared_between_apps(
    make_app: Callable[..., Flask], redis_url: str, key_prefix: str
) -> None:
    config = {"FEDERATION_AUTH_USAGE_STORAGE_URI": redis_url, "FEDERATION_AUTH_USAGE_KEY_PREFIX": key_prefix}
    # Two apps with their own components stand in for two worker processes.
    first, second = make_app(**config), make_app(**config)
    with first.app_context():
        world = World()

    first.test_client().get(DIAGNOSTICS, headers=bearer(world.key_dev))
    response = second.test_client().get(DIAGNOSTICS, headers=bearer(world.key_dev))

    recent = response.json["data"]["recent_requests"]
    assert recent["source"] == "redis"
    assert recent["by_auth_method"] == {"api_key": 2, "oidc_bearer": 0, "oidc_session": 0}


def test_redis_down_keeps_requests_working(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_federation")
    down = closed_loopback_url().replace("http://", "redis://")
    app = make_app(FEDERATION_AUTH_USAGE_STORAGE_URI=down, FEDERATION_AUTH_USAGE_KEY_PREFIX="federation-test:down")
    with app.app_context():
        world = World()

    client = app.test_client()
    responses = [client.get(DIAGNOSTICS, headers=bearer(world.key_dev)) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert responses[-1].json["data"]["recent_requests"] == {
        "window_seconds": WINDOW_HOURS * 3600,
        "by_auth_method": {},
        "source": "unavailable",
    }
    warnings = [record for record in caplog.records if "Counting requests per auth method" in record.getMessage()]
    assert len(warnings) == 1


def test_redis_read_failure_raises_unavailable() -> None:
    counter = RedisUsageCounter(closed_loopback_url().replace("http://", "redis://"), "federation-test:down")

    with pytest.raises(UsageUnavailable):
        counter.counts("developer:dev_a", HOUR)


def test_diagnostics_counts_own_requests(client: Any, world: World) -> None:
    for _ in range(2):
        client.get(DIAGNOSTICS, headers=bearer(world.key_dev))
    client.get(DIAGNOSTICS, headers=bearer(world.key_dev_no_diagnostics))
    client.get("/federation/provider/v1/tenants", headers=bearer(world.key_a))

    recent = client.get(DIAGNOSTICS, headers=bearer(world.key_dev)).json["data"]["recent_requests"]
    # Four developer requests: three that passed and the one without the entitlement, which still authenticated.
    assert recent == {
        "window_seconds": WINDOW_HOURS * 3600,
        "by_auth_method": {"api_key": 4, "oidc_bearer": 0, "oidc_session": 0},
        "source": "memory",
    }
