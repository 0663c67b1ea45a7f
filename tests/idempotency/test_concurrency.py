"""Concurrent and slow requests with one key, over a real threaded HTTP server, on every store."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask, jsonify
from sqlalchemy import func, select

from flask_federation import with_idempotency_required, with_provider_auth
from flask_federation.models import Tenant
from flask_federation.services import tenants
from flask_federation.state import get_state

from ..conftest import World, bearer
from ..servers import serve_app

TENANTS = "/federation/provider/v1/tenants"
BURST = 50


def _send_burst(url: str, body: bytes, headers: dict[str, str], count: int) -> list[requests.Response]:
    barrier = threading.Barrier(count)

    def send(_: int) -> requests.Response:
        with requests.Session() as session:
            barrier.wait(timeout=10)
            return session.post(url, data=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def test_concurrent_posts_create_one_tenant(
    make_store_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_store_app()
    with app.app_context():
        world = World()

    original_create = tenants.create_tenant

    def slow_create(*args: Any, **kwargs: Any) -> Any:
        # Injected latency, so that the burst arrives while the first handler still runs.
        time.sleep(0.5)
        return original_create(*args, **kwargs)

    monkeypatch.setattr(tenants, "create_tenant", slow_create)
    body = json.dumps({"name": "Shop", "slug": "shop", "region": "eu-west-1"}).encode()
    headers = {**bearer(world.key_a), "Content-Type": "application/json", "Idempotency-Key": "burst"}
    with serve_app(app) as base_url:
        burst = _send_burst(base_url + TENANTS, body, headers, BURST)
        late = [requests.post(base_url + TENANTS, data=body, headers=headers, timeout=30) for _ in range(5)]

    originals = [r for r in burst if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    original = originals[0]
    in_use = 0
    for response in burst:
        if response is original:
            continue

        if response.status_code == 409:
            assert response.json()["error"]["code"] == "idempotency_key_in_use"
            assert int(response.headers["Retry-After"]) >= 1
            in_use += 1
        else:
            assert response.status_code == 201
            assert response.headers["Idempotent-Replayed"] == "true"
            assert response.content == original.content

    assert in_use >= 1
    for response in late:
        assert response.headers["Idempotent-Replayed"] == "true"
        assert response.content == original.content
        assert response.headers["Location"] == original.headers["Location"]

    with app.app_context():
        rows = get_state().session.execute(select(func.count()).select_from(Tenant).filter_by(slug="shop"))
        assert rows.scalar_one() == 1


def test_expired_lease_gives_outcome_unknown(make_store_app: Callable[..., Flask]) -> None:
    app = make_store_app(FEDERATION_IDEMPOTENCY_LEASE=0.3, FEDERATION_IDEMPOTENCY_TTL=30)
    entered = threading.Event()
    finish = threading.Event()
    runs: list[int] = []

    @app.post("/host/slow")
    @with_provider_auth("tenants:write")
    @with_idempotency_required
    def slow() -> Any:
        runs.append(1)
        entered.set()
        finish.wait(timeout=10)
        return jsonify(done=True), 201

    with app.app_context():
        world = World()

    headers = {**bearer(world.key_a), "Idempotency-Key": "slow"}
    with serve_app(app) as base_url, ThreadPoolExecutor(max_workers=1) as pool:
        url = base_url + "/host/slow"
        first = pool.submit(requests.post, url, headers=headers, timeout=30)
        assert entered.wait(timeout=10)
        within_lease = requests.post(url, headers=headers, timeout=10)
        time.sleep(0.4)
        after_lease = requests.post(url, headers=headers, timeout=10)
        changed = requests.post(url, headers=headers, data=b"other", timeout=10)
        finish.set()
        original = first.result(timeout=30)
        replay = requests.post(url, headers=headers, timeout=10)

    assert within_lease.status_code == 409
    assert within_lease.json()["error"]["code"] == "idempotency_key_in_use"
    assert within_lease.headers["Retry-After"] == "1"
    assert after_lease.status_code == 409
    assert after_lease.json()["error"]["code"] == "idempotency_outcome_unknown"
    assert "lease_expired_at" in after_lease.json()["error"]["details"]
    assert "Retry-After" not in after_lease.headers
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert original.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == original.content
    assert len(runs) == 1
