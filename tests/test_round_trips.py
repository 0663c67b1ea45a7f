"""Round trips of guarded requests: SQL statements and Redis commands per request are behaviour, pinned here."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_federation import with_provider_auth, with_rate_limit
from flask_federation.ratelimit.component import get_rate_limits
from flask_federation.state import get_state

from .conftest import StatementCounter, World, bearer
from .servers import RedisCommandLog, private_redis

TENANTS = "/federation/provider/v1/tenants"
STRATEGIES = ("sliding-window-counter", "fixed-window", "moving-window")


def credential_lookups(counter: StatementCounter) -> list[str]:
    return [statement for statement in counter.statements if "FROM federation_credentials" in statement]


def test_authenticated_read_statement_count(client: Any, world: World, count_statements: StatementCounter) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    assert client.get(path, headers=bearer(world.key_a)).status_code == 200  # Marks the key used this minute.
    count_statements.statements.clear()

    assert client.get(path, headers=bearer(world.key_a)).status_code == 200

    # The key and its provider, the tenant, then the audit event. PostgreSQL locks the chain head and
    # inserts the event with the head update as a CTE. SQLite first creates the head if missing, which
    # takes its write lock, then locks, updates and inserts in separate statements.
    expected = 6 if get_state().db.engine.dialect.name == "sqlite" else 4
    assert len(count_statements.statements) <= expected, count_statements.statements
    assert len(credential_lookups(count_statements)) == 1


def test_idempotent_write_looks_up_key_once(client: Any, world: World, count_statements: StatementCounter) -> None:
    headers = {**bearer(world.key_a), "Idempotency-Key": uuid.uuid4().hex}
    body = {"name": "Once", "slug": "once", "region": "eu-west-1"}
    assert client.post(TENANTS, json=body, headers=headers).status_code == 201
    count_statements.statements.clear()

    replay = client.post(TENANTS, json=body, headers=headers)

    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(credential_lookups(count_statements)) == 1


@pytest.fixture
def redis_log() -> Iterator[tuple[str, RedisCommandLog]]:
    with private_redis() as server:
        log = RedisCommandLog(server.url)
        yield server.url, log
        log.close()


def script_calls(commands: list[str]) -> list[str]:
    return [command.split()[0] for command in commands]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rate_limited_request_one_redis_call(
    make_app: Callable[..., Flask], redis_log: tuple[str, RedisCommandLog], strategy: str
) -> None:
    url, log = redis_log
    app = make_app(FEDERATION_RATELIMIT_STORAGE_URI=url, FEDERATION_RATELIMIT_STRATEGY=strategy)
    with app.app_context():
        world = World()
        path = f"{TENANTS}/{world.tenant_a.public_id}"

    client = app.test_client()
    client.get(path, headers=bearer(world.key_a))  # Loads the script and opens the connection.

    commands = log.commands_during(lambda: client.get(path, headers=bearer(world.key_a)))

    assert script_calls(commands) == ["EVALSHA"]


def test_idempotent_write_redis_calls(make_app: Callable[..., Flask], redis_log: tuple[str, RedisCommandLog]) -> None:
    url, log = redis_log
    app = make_app(FEDERATION_RATELIMIT_STORAGE_URI=url, FEDERATION_IDEMPOTENCY_STORE=url)
    with app.app_context():
        world = World()

    client = app.test_client()
    warm_up = {**bearer(world.key_a), "Idempotency-Key": uuid.uuid4().hex}
    client.post(TENANTS, json={"name": "Warm", "slug": "warm", "region": "eu-west-1"}, headers=warm_up)
    headers = {**bearer(world.key_a), "Idempotency-Key": uuid.uuid4().hex}
    body = {"name": "Counted", "slug": "counted", "region": "eu-west-1"}

    def write() -> None:
        client.post(TENANTS, json=body, headers=headers)

    # The rate limit, the claim, and storing the response.
    assert script_calls(log.commands_during(write)) == ["EVALSHA", "EVALSHA", "EVALSHA"]
    # A replay: the rate limit and the claim, which returns the stored response.
    assert script_calls(log.commands_during(write)) == ["EVALSHA", "EVALSHA"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_redis_hit_matches_limits_window(
    make_app: Callable[..., Flask], redis_rate_limits: dict[str, str], strategy: str
) -> None:
    app = make_app(**redis_rate_limits, FEDERATION_RATELIMIT_STRATEGY=strategy)

    @app.get("/host/report")
    @with_rate_limit("4/minute", cost=2)
    @with_provider_auth("tenants:read")
    def report() -> Any:
        return jsonify(ok=True)

    with app.app_context():
        world = World()
        caller = f"provider:{world.provider_a.public_id}"

    client = app.test_client()
    first = client.get("/host/report", headers=bearer(world.key_a))
    second = client.get("/host/report", headers=bearer(world.key_a))
    rejected = client.get("/host/report", headers=bearer(world.key_a))

    assert first.headers["RateLimit"].startswith('"report";r=2;')
    assert second.headers["RateLimit"].startswith('"report";r=0;')
    assert rejected.status_code == 429
    assert rejected.headers["RateLimit"].startswith('"report";r=0;')
    with app.app_context():
        rate_limits = get_rate_limits()
        spec_policy = app.view_functions["report"].__federation_rate_limits__[0].route_policy
        # limits' own get_window_stats reads the counters that the one-call script wrote.
        peeked = rate_limits.peek(spec_policy, caller)

    assert peeked.remaining == 0
    assert 0 < peeked.reset_seconds <= 60
