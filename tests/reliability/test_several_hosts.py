"""Two gunicorn servers of two workers each, on different ports, sharing one PostgreSQL and one Redis.

Across them a rate limit admits exactly its quota, an idempotency key runs its
write once and replays it everywhere, and concurrent requests of one provider
leave its audit chain unforked and gap-free.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from flask_federation.cli import federation_cli
from flask_federation.models import AuditEvent, Tenant
from flask_federation.state import get_state

from ..services import require_postgres, require_redis
from .hosts import gunicorn_hosts
from .support import DIAGNOSTICS, TENANTS, Result, Seeds, create_tenant, seeded_database, send

DEVELOPER_QUOTA = 5


@pytest.fixture(scope="module", params=["sql", "redis"])
def hosts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], Seeds, Flask]]:
    """Yield the URLs of two servers, the seeded keys and an app on their database; the store is the param."""
    database_url = require_postgres()
    redis_url = require_redis()
    prefix = f"test-reliability-{uuid.uuid4().hex}"
    settings = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "FEDERATION_RATELIMIT_STORAGE_URI": redis_url,
        "FEDERATION_RATELIMIT_KEY_PREFIX": prefix,
        "FEDERATION_AUTH_USAGE_STORAGE_URI": redis_url,
        "FEDERATION_AUTH_USAGE_KEY_PREFIX": f"{prefix}:usage:",
        "FEDERATION_DEVELOPER_RATE_LIMIT": f"{DEVELOPER_QUOTA}/minute",
        "FEDERATION_PROVIDER_RATE_LIMIT": "100000/minute",
        "FEDERATION_IDEMPOTENCY_STORE": redis_url if request.param == "redis" else "sql",
        "FEDERATION_IDEMPOTENCY_REDIS_PREFIX": f"{prefix}:idempotency:",
    }
    log_dir = tmp_path_factory.mktemp(f"hosts-{request.param}")
    try:
        with seeded_database(database_url) as (app, seeds), gunicorn_hosts(2, settings, log_dir) as urls:
            yield urls, seeds, app
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)

        client.close()


def _burst(count: int, call: Any) -> list[Result]:
    barrier = threading.Barrier(count)

    def run(number: int) -> Result:
        barrier.wait(timeout=30)
        result: Result = call(number)
        return result

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_rate_limit_exact_across_hosts(hosts: tuple[list[str], Seeds, Flask]) -> None:
    urls, seeds, _ = hosts
    results = _burst(40, lambda number: send("GET", urls[number % 2] + DIAGNOSTICS, seeds.key_dev))
    statuses = Counter(result.status for result in results)
    assert statuses == {200: DEVELOPER_QUOTA, 429: 40 - DEVELOPER_QUOTA}
    for result in results:
        assert result.envelope()["ok"] is (result.status == 200)


def test_idempotent_write_once_across_hosts(hosts: tuple[list[str], Seeds, Flask]) -> None:
    urls, seeds, app = hosts
    slug = f"once-{uuid.uuid4().hex[:12]}"
    results = _burst(30, lambda number: create_tenant(urls[number % 2], seeds.key_a, slug))
    originals = [r for r in results if r.status == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    for result in results:
        assert result.status in (201, 409), result.body
        if result.status == 409:
            assert result.envelope()["error"]["code"] == "idempotency_key_in_use"
            assert int(result.headers["Retry-After"]) >= 1
        elif result is not originals[0]:
            assert result.headers["Idempotent-Replayed"] == "true"
            assert result.body == originals[0].body

    # Afterwards every worker of both servers replays the one stored response.
    for number in range(8):
        replay = create_tenant(urls[number % 2], seeds.key_a, slug)
        assert replay.status == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.body == originals[0].body

    with app.app_context():
        session = get_state().session
        assert session.execute(select(func.count()).select_from(Tenant).filter_by(slug=slug)).scalar_one() == 1
        tenant_id = json.loads(originals[0].body)["data"]["id"]
        events = select(func.count()).select_from(AuditEvent).filter_by(action="tenant.create", target_id=tenant_id)
        assert session.execute(events).scalar_one() == 1
        session.remove()


def test_audit_chain_unforked_across_hosts(hosts: tuple[list[str], Seeds, Flask]) -> None:
    urls, seeds, app = hosts
    chain = f"provider:{seeds.provider_a}"
    with app.app_context():
        before = get_state().session.execute(select(func.count()).select_from(AuditEvent).filter_by(chain=chain)).scalar_one()
        get_state().session.remove()

    def call(number: int) -> Result:
        url = urls[number % 2]
        if number % 3 == 0:
            return create_tenant(url, seeds.key_a)

        if number % 3 == 1:
            return send("GET", f"{url}{TENANTS}/{seeds.tenant_a}", seeds.key_a)

        return send("GET", url + TENANTS, seeds.key_a)

    results = _burst(48, call)
    assert {result.status for result in results} <= {200, 201}

    with app.app_context():
        session = get_state().session
        sequences = list(
            session.execute(select(AuditEvent.sequence).filter_by(chain=chain).order_by(AuditEvent.sequence)).scalars()
        )
        session.remove()

    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == before + len(results)
    verify = app.test_cli_runner().invoke(federation_cli, ["audit", "verify"])
    assert verify.exit_code == 0, verify.output
    assert "Verified" in verify.output
