"""Seeding the shared database, driving load at the servers, and checking the database after a run."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import redis
import requests
from flask import Flask
from sqlalchemy import select

from flask_federation import Federation
from flask_federation.idempotency.keys import lookup_key
from flask_federation.models import AuditEvent, IdempotencyKey, Tenant, metadata
from flask_federation.state import get_state

from ..conftest import World

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"
IDEMPOTENCY_REDIS_PREFIX = "federation:idempotency:"
#: Client timeout of every request in these tests: a request still open after it counts as hung.
CLIENT_TIMEOUT = 15.0


@dataclasses.dataclass(frozen=True)
class Seeds:
    """The keys and ids that the servers' requests use, created before the servers start."""

    provider_a: str
    key_a: str
    key_b: str
    key_dev: str
    tenant_a: str


def setup_app(database_url: str, **config: Any) -> Flask:
    """Return an app on ``database_url`` for seeding, checking and the CLI; it serves no requests."""
    app = Flask("reliability_setup")
    app.config.update(SECRET_KEY="test-secret", SQLALCHEMY_DATABASE_URI=database_url, FEDERATION_ENABLED=True, **config)
    Federation(app)
    return app


@contextmanager
def seeded_database(database_url: str) -> Iterator[tuple[Flask, Seeds]]:
    """Create the tables and the world's rows; drop the tables afterwards."""
    app = setup_app(database_url)
    with app.app_context():
        engine = get_state().db.engine
        metadata.drop_all(engine)
        metadata.create_all(engine)
        world = World()
        seeds = Seeds(
            world.provider_a.public_id, world.key_a, world.key_b, world.key_dev, world.tenant_a.public_id
        )
        get_state().session.remove()
        # No pooled connection is kept: a test may restart the server before the next use.
        engine.dispose()

    try:
        yield app, seeds
    finally:
        with app.app_context():
            get_state().session.remove()
            metadata.drop_all(get_state().db.engine)
            get_state().db.engine.dispose()


@dataclasses.dataclass
class Result:
    """One request of a load run, as the client saw it."""

    started: float
    elapsed: float
    method: str
    url: str
    status: int | None
    headers: dict[str, str]
    body: bytes
    idempotency_key: str | None = None
    error: str | None = None

    def envelope(self) -> dict[str, Any]:
        """Return the parsed JSON envelope, or raise naming the request when the body is not one."""
        assert self.headers.get("Content-Type", "").startswith("application/json"), (
            f"{self.method} {self.url} answered {self.status} with {self.headers.get('Content-Type')}: {self.body[:200]!r}"
        )
        body: dict[str, Any] = json.loads(self.body)
        assert isinstance(body.get("ok"), bool), f"{self.method} {self.url}: not an envelope: {self.body[:200]!r}"
        return body


def send(method: str, url: str, key: str, *, idempotency_key: str | None = None, body: Any = None) -> Result:
    """Send one request with the client timeout and record what came back, connection errors included."""
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key

    started = time.monotonic()
    try:
        response = requests.request(method, url, headers=headers, json=body, timeout=CLIENT_TIMEOUT)
    except requests.RequestException as error:
        return Result(started, time.monotonic() - started, method, url, None, {}, b"", idempotency_key, repr(error))

    return Result(
        started,
        time.monotonic() - started,
        method,
        url,
        response.status_code,
        dict(response.headers),
        response.content,
        idempotency_key,
    )


def create_tenant(base_url: str, key: str, slug: str | None = None) -> Result:
    """POST a new tenant whose slug is also its Idempotency-Key, so a row can be traced to its key."""
    slug = slug or f"t-{uuid.uuid4().hex[:16]}"
    body = {"name": slug, "slug": slug, "region": "eu-west-1"}
    return send("POST", base_url + TENANTS, key, idempotency_key=slug, body=body)


class LoadRun:
    """Threads that send requests until stopped; each request is one call of ``make_request``."""

    def __init__(self, make_request: Callable[[int], Result], threads: int = 6) -> None:
        self.make_request = make_request
        self.threads = threads
        self.results: list[Result] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads)
        self._counter = 0

    def _worker(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._counter += 1
                number = self._counter

            result = self.make_request(number)
            with self._lock:
                self.results.append(result)

            # Bounded load: a short pause keeps a few dozen requests per second from these threads.
            time.sleep(0.02)

    def __enter__(self) -> LoadRun:
        self.futures = [self._pool.submit(self._worker) for _ in range(self.threads)]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for future in self.futures:
            future.result(timeout=CLIENT_TIMEOUT * 2)

        self._pool.shutdown()

    def between(self, start: float, end: float) -> list[Result]:
        return [result for result in self.results if start <= result.started < end]


def wait_for(check: Callable[[], bool], timeout: float, description: str) -> float:
    """Poll ``check`` until it returns true and return the seconds it took; fail after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started

        time.sleep(0.1)

    raise AssertionError(f"{description} did not happen within {timeout} s")


def _redis_record(redis_url: str, key: str) -> tuple[str, int | None] | None:
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.get(IDEMPOTENCY_REDIS_PREFIX + key)
    finally:
        client.close()

    if raw is None:
        return None

    record = json.loads(raw)
    status = json.loads(record["response"])["status"] if record["state"] == "completed" else None
    return record["state"], status


def _sql_record(key: str) -> tuple[str, int | None] | None:
    query = select(IdempotencyKey).where(IdempotencyKey.lookup_key == key)
    record = get_state().session.execute(query).scalar_one_or_none()
    return None if record is None else (record.state, record.response_status)


def assert_writes_recorded(
    app: Flask, provider_id: str, created: dict[str, Result], redis_store: str | None = None
) -> list[Tenant]:
    """Check that every tenant the run created has its audit event and its idempotency record.

    ``created`` maps each slug the run tried to create (also its Idempotency-Key) to
    its last result. A 201 must have its row. Every row must have a ``tenant.create``
    success event on the provider's chain, and a claim or stored response under its key.
    The records are read from SQL, or from the Redis at ``redis_store`` under the default prefix.
    """
    with app.app_context():
        session = get_state().session
        tenants = list(session.execute(select(Tenant).where(Tenant.slug.in_(list(created)))).scalars())
        slugs = {tenant.slug for tenant in tenants}
        for slug, result in created.items():
            if result.status == 201:
                assert slug in slugs, f"{slug} was acknowledged with 201 but has no row"

        for tenant in tenants:
            events = session.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "tenant.create",
                    AuditEvent.target_id == tenant.public_id,
                    AuditEvent.outcome == "success",
                )
            ).scalars()
            assert len(list(events)) == 1, f"tenant {tenant.slug} has no single tenant.create event"
            scoped = lookup_key(f"provider:{provider_id}", "POST", TENANTS, tenant.slug)
            record = _redis_record(redis_store, scoped) if redis_store is not None else _sql_record(scoped)
            assert record is not None, f"tenant {tenant.slug} has no idempotency record"
            state, status = record
            # A claim whose result could not be stored stays in progress: retries get idempotency_outcome_unknown.
            assert state in ("in_progress", "completed"), f"tenant {tenant.slug}: record in state {state}"
            if state == "completed":
                assert status == 201, f"tenant {tenant.slug} stored {status}"

        session.remove()
        return tenants
