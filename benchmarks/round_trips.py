"""Count the SQL statements and Redis commands of guarded federation requests.

Runs the real provider routes in process against PostgreSQL and a private
redis-server (rate limits and idempotency keys in Redis), and prints, per
request: the SQL statements and commits of every engine (the idempotency
store's SQL engine included), and the top-level Redis commands that MONITOR
saw. Commands that scripts run inside Redis are not round trips and are left
out. None of these paths pipelines commands, so each command is one round trip.

Usage:
    createdb -h 127.0.0.1 -U postgres bench_round_trips
    python -m benchmarks.round_trips --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_round_trips
"""

from __future__ import annotations

import argparse
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event

from flask_federation import Federation, admin
from flask_federation.models import Provider
from flask_federation.state import get_state
from tests.servers import RedisCommandLog

from .seed import Seed, seed_database
from .support import private_redis, versions

TENANTS = "/federation/provider/v1/tenants"


class StatementLog:
    """Records the SQL statements and commits of every engine while it collects."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.commits = 0
        event.listen(Engine, "before_cursor_execute", self._statement)
        event.listen(Engine, "commit", self._commit)

    def _statement(self, connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def _commit(self, connection: Any) -> None:
        self.commits += 1

    def clear(self) -> None:
        self.statements.clear()
        self.commits = 0


@dataclasses.dataclass(frozen=True)
class Measurement:
    scenario: str
    status: int
    statements: list[str]
    commits: int
    redis_commands: list[str]


def build_app(database_url: str, redis_url: str, **config: Any) -> Flask:
    app = Flask("round_trip_benchmark")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        SECRET_KEY="benchmark-only",  # noqa: S106 (signs benchmark cursors only)
        FEDERATION_ENABLED=True,
        FEDERATION_RATELIMIT_STORAGE_URI=redis_url,
        FEDERATION_IDEMPOTENCY_STORE=redis_url,
    )
    app.config.update(config)
    Federation(app)
    return app


@dataclasses.dataclass
class Scenarios:
    """The requests to count, sent through ``client`` with ``seed``'s key."""

    client: FlaskClient
    seed: Seed
    monitor: RedisCommandLog
    log: StatementLog

    def measure(self, scenario: str, send: Callable[[], Any]) -> Measurement:
        self.log.clear()
        responses: list[Any] = []
        commands = self.monitor.commands_during(lambda: responses.append(send()))
        return Measurement(scenario, responses[0].status_code, list(self.log.statements), self.log.commits, commands)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.seed.api_key}", **extra}

    def warm_up(self) -> None:
        """Open the connections, load the scripts and create the audit chains, so that the counts are the steady state."""
        read = f"{TENANTS}/{self.seed.tenant_id}"
        self.client.get(read, headers=self.headers())
        self.client.get(read, headers={"Authorization": "Bearer " + _unknown_key(self.seed.api_key)})
        body = {"name": "Warm-up", "slug": f"warm-up-{uuid.uuid4().hex[:8]}", "region": "eu-west-1"}
        self.client.post(TENANTS, json=body, headers=self.headers(**{"Idempotency-Key": uuid.uuid4().hex}))

    def read(self, scenario: str, key: str | None = None) -> Measurement:
        headers = {"Authorization": f"Bearer {key or self.seed.api_key}"}
        return self.measure(scenario, lambda: self.client.get(f"{TENANTS}/{self.seed.tenant_id}", headers=headers))

    def write_and_replay(self, label: str = "") -> Iterator[Measurement]:
        body = {"name": "Round trips", "slug": f"round-trips-{uuid.uuid4().hex[:8]}", "region": "eu-west-1"}
        headers = self.headers(**{"Idempotency-Key": uuid.uuid4().hex})

        def write() -> Any:
            return self.client.post(TENANTS, json=body, headers=headers)

        yield self.measure(f"write with Idempotency-Key{label}", write)
        yield self.measure(f"idempotent replay{label}", write)


def _unknown_key(key: str) -> str:
    """Return a well-formed key with the same audience whose id matches no credential."""
    from flask_federation.auth.api_keys import _checksum

    body = key[:4] + "0" * 12 + key[16:-6]
    return body + _checksum(body)


def _fresh_key(app: Flask, seed: Seed) -> str:
    with app.app_context():
        provider = get_state().session.get(Provider, seed.provider_pk)
        assert provider is not None
        return admin.issue_key(provider.public_id, ["tenants:read"]).key


def measure_all(database_url: str, redis_url: str) -> list[Measurement]:
    """Return the counts of each scenario: Redis stores, then a tight rate limit, then the SQL idempotency store."""
    seed = seed_database(database_url)
    monitor = RedisCommandLog(redis_url)
    log = StatementLog()
    app = build_app(database_url, redis_url)
    scenarios = Scenarios(app.test_client(), seed, monitor, log)
    scenarios.warm_up()
    measurements = [
        scenarios.read("read, first use of a key this minute", _fresh_key(app, seed)),
        scenarios.read("read (steady state)"),
        *scenarios.write_and_replay(),
        scenarios.measure(
            "401, unknown key",
            lambda: scenarios.client.get(
                f"{TENANTS}/{seed.tenant_id}", headers={"Authorization": "Bearer " + _unknown_key(seed.api_key)}
            ),
        ),
    ]

    # The provider policy of this app allows one request per hour, so after the warm-up every read is a 429.
    limited = build_app(database_url, redis_url, FEDERATION_PROVIDER_RATE_LIMIT="1/hour", FEDERATION_RATELIMIT_KEY_PREFIX="limited")
    scenarios = Scenarios(limited.test_client(), seed, monitor, log)
    scenarios.warm_up()
    measurements.append(scenarios.read("429, over the limit"))

    sql_store = build_app(database_url, redis_url, FEDERATION_IDEMPOTENCY_STORE="sql", FEDERATION_RATELIMIT_KEY_PREFIX="sql-store")
    scenarios = Scenarios(sql_store.test_client(), seed, monitor, log)
    scenarios.warm_up()
    measurements.extend(scenarios.write_and_replay(", SQL store"))

    # The batch interval is long enough that the writer thread stays out of the counts: they show the request alone.
    opt_in = build_app(
        database_url,
        redis_url,
        FEDERATION_AUDIT_BATCH_READS=True,
        FEDERATION_AUDIT_BATCH_SECONDS=3600,
        FEDERATION_CREDENTIAL_CACHE_SECONDS=5,
        FEDERATION_RATELIMIT_KEY_PREFIX="opt-in",
    )
    scenarios = Scenarios(opt_in.test_client(), seed, monitor, log)
    scenarios.warm_up()
    measurements.append(scenarios.read("read (steady state), batched audit and API key cache"))
    monitor.close()
    return measurements


def _short(statement: str) -> str:
    return statement if len(statement) <= 110 else statement[:107] + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", required=True, help="PostgreSQL URL of a database whose federation tables the benchmark may drop."
    )
    parser.add_argument("--verbose", action="store_true", help="Also print every statement and command.")
    arguments = parser.parse_args()

    print(versions())
    with private_redis() as redis_url:
        measurements = measure_all(arguments.database_url, redis_url)

    print("\n| request | status | SQL statements | commits | Redis round trips | Redis commands |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for item in measurements:
        names = ", ".join(command.split()[0] for command in item.redis_commands) or "none"
        print(f"| {item.scenario} | {item.status} | {len(item.statements)} | {item.commits} | {len(item.redis_commands)} | {names} |")

    if arguments.verbose:
        for item in measurements:
            print(f"\n{item.scenario}:")
            for statement in item.statements:
                print(f"  SQL   {_short(statement)}")
            for command in item.redis_commands:
                print(f"  Redis {_short(command)}")


if __name__ == "__main__":
    main()
