"""The per-process cache of verified API keys (FEDERATION_CREDENTIAL_CACHE_SECONDS), on both databases."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask, jsonify
from sqlalchemy import event, update

from flask_federation import ConfigurationError, Federation, admin, current_principal, with_provider_auth
from flask_federation.auth import authenticate
from flask_federation.auth.api_keys import SECRET_LENGTH, _checksum, parse_key
from flask_federation.auth.credential_cache import COMPONENT, CredentialCache, build_credential_cache
from flask_federation.auth.principal import AUTH_METHOD_API_KEY, Principal
from flask_federation.config import load_settings
from flask_federation.entitlements import Audience
from flask_federation.models import Credential, utcnow
from flask_federation.state import get_state

from .conftest import StatementCounter, World, bearer

TENANTS = "/federation/provider/v1/tenants"
TTL_SECONDS = 5


class FakeClock:
    """A monotonic clock that moves only when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def counting_statements(app: Flask) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    with app.app_context():
        engine = get_state().db.engine

    event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


def credential_lookups(counter: StatementCounter) -> int:
    return sum("FROM federation_credentials" in statement for statement in counter.statements)


def cache_of(app: Flask) -> CredentialCache:
    cache = get_state(app).components[COMPONENT]
    assert isinstance(cache, CredentialCache)
    return cache


def key_id_of(key: str) -> str:
    return parse_key(key).key_id


def make_world(app: Flask) -> World:
    """Create the world in an app context and load the ids the tests read after that context ends."""
    with app.app_context():
        world = World()
        for row in (world.provider_a, world.provider_b, world.tenant_a):
            assert row.public_id

    return world


def same_id_other_secret(key: str) -> str:
    """Return a well-formed key with the key id of ``key`` and another secret."""
    body = f"{key_id_of(key)}_{'Z' * SECRET_LENGTH}"
    return body + _checksum(body)


@pytest.fixture
def cached_app(make_app: Callable[..., Flask]) -> tuple[Flask, World, FakeClock]:
    app = make_app(FEDERATION_CREDENTIAL_CACHE_SECONDS=TTL_SECONDS)
    world = make_world(app)

    clock = FakeClock()
    cache_of(app).clock = clock
    return app, world, clock


def test_cache_off_by_default(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    world = make_world(app)

    client = app.test_client()
    assert COMPONENT not in get_state(app).components
    for _ in range(3):
        with counting_statements(app) as counter:
            assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

        assert credential_lookups(counter) == 1


def test_second_request_runs_no_credential_query(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, _ = cached_app
    client = app.test_client()
    with counting_statements(app) as first:
        assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    with counting_statements(app) as second:
        response = client.get(TENANTS, headers=bearer(world.key_a))

    assert response.status_code == 200
    assert credential_lookups(first) == 1
    assert credential_lookups(second) == 0
    assert [tenant["id"] for tenant in response.json["data"]["items"]] == [world.tenant_a.public_id]


def test_wrong_secret_with_cached_key_id_rejected(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, _ = cached_app
    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    with counting_statements(app) as counter:
        forged = client.get(TENANTS, headers=bearer(same_id_other_secret(world.key_a)))

    assert forged.status_code == 401
    assert "not valid" in forged.json["error"]["message"]
    assert credential_lookups(counter) == 0
    # The failed comparison left the entry as it was.
    with counting_statements(app) as counter:
        assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    assert credential_lookups(counter) == 0


def test_expired_key_rejected_from_cache(
    cached_app: tuple[Flask, World, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, world, _ = cached_app
    with app.app_context():
        issued = admin.issue_key(
            world.provider_a.public_id, ["tenants:read"], expires_at=utcnow() + dt.timedelta(seconds=30)
        )

    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(issued.key)).status_code == 200
    later = utcnow() + dt.timedelta(seconds=31)
    monkeypatch.setattr(authenticate, "utcnow", lambda: later)

    with counting_statements(app) as counter:
        response = client.get(TENANTS, headers=bearer(issued.key))

    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]
    assert credential_lookups(counter) == 0


def test_admin_revocation_evicts_key(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, _ = cached_app
    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    with app.app_context():
        admin.revoke_key(key_id_of(world.key_a))

    response = client.get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 401
    assert "revoked" in response.json["error"]["message"]


def test_admin_entitlement_change_evicts_key(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, _ = cached_app
    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    with app.app_context():
        admin.set_key_entitlements(key_id_of(world.key_a), ["audit:read"])

    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 403


def test_database_revocation_applies_after_ttl(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, clock = cached_app
    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200
    with app.app_context():
        session = get_state().session
        session.execute(update(Credential).where(Credential.key_id == key_id_of(world.key_a)).values(revoked_at=utcnow()))
        session.commit()

    clock.now += TTL_SECONDS - 0.1
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    clock.now += 0.1
    response = client.get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 401
    assert "revoked" in response.json["error"]["message"]


def test_stale_last_used_queries_again(
    cached_app: tuple[Flask, World, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, world, _ = cached_app
    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200
    later = utcnow() + authenticate.LAST_USED_RESOLUTION + dt.timedelta(seconds=1)
    monkeypatch.setattr(authenticate, "utcnow", lambda: later)

    with counting_statements(app) as touched:
        assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    with counting_statements(app) as cached:
        assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200

    assert credential_lookups(touched) == 1
    assert any(statement.startswith("UPDATE federation_credentials") for statement in touched.statements)
    assert credential_lookups(cached) == 0
    with app.app_context():
        credential = admin.list_keys(world.provider_a.public_id)[0]
        assert credential.last_used_at == later


def test_failures_not_cached(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, _ = cached_app
    client = app.test_client()
    with app.app_context():
        revoked = admin.issue_key(world.provider_a.public_id, ["tenants:read"])
        admin.revoke_key(revoked.credential.key_id)

    assert client.get(TENANTS, headers=bearer(same_id_other_secret(world.key_a))).status_code == 401
    assert client.get(TENANTS, headers=bearer(revoked.key)).status_code == 401
    assert client.get(TENANTS, headers=bearer(world.key_dev)).status_code == 401

    assert len(cache_of(app)) == 0


def test_size_bound_evicts_least_recent(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_CREDENTIAL_CACHE_SECONDS=TTL_SECONDS, FEDERATION_CREDENTIAL_CACHE_SIZE=2)
    world = make_world(app)

    client = app.test_client()
    for key in (world.key_a, world.key_a_read_only, world.key_a, world.key_b):
        assert client.get(TENANTS, headers=bearer(key)).status_code == 200

    lookups = {}
    for key in (world.key_a, world.key_b, world.key_a_read_only):
        with counting_statements(app) as counter:
            assert client.get(TENANTS, headers=bearer(key)).status_code == 200

        lookups[key] = credential_lookups(counter)

    assert lookups[world.key_a] == 0
    assert lookups[world.key_b] == 0
    assert lookups[world.key_a_read_only] == 1
    assert len(cache_of(app)) == 2


def test_concurrent_requests_share_cache(cached_app: tuple[Flask, World, FakeClock]) -> None:
    app, world, _ = cached_app

    # A host route without audit writes, so that a cache hit touches no database.
    @app.get("/host/whoami")
    @with_provider_auth("tenants:read")
    def whoami() -> Any:
        return jsonify(subject=current_principal.subject_id)

    keys = [world.key_a, world.key_a_read_only, world.key_b]
    for key in keys:
        assert app.test_client().get("/host/whoami", headers=bearer(key)).status_code == 200

    statuses: list[int] = []
    subjects: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def call_repeatedly(key: str) -> None:
        client = app.test_client()
        for _ in range(50):
            response = client.get("/host/whoami", headers=bearer(key))
            with lock:
                statuses.append(response.status_code)
                subjects.add((key, response.json["subject"]))

    threads = [threading.Thread(target=call_repeatedly, args=(keys[index % 3],)) for index in range(9)]
    with counting_statements(app) as counter:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert statuses == [200] * 450
    assert subjects == {
        (world.key_a, world.provider_a.public_id),
        (world.key_a_read_only, world.provider_a.public_id),
        (world.key_b, world.provider_b.public_id),
    }
    assert credential_lookups(counter) == 0


def test_start_logs_ttl(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flask_federation"):
        make_app(FEDERATION_CREDENTIAL_CACHE_SECONDS=2.5)

    messages = [record.getMessage() for record in caplog.records if "API key cache" in record.getMessage()]
    assert len(messages) == 1
    assert "2.5 s" in messages[0]


def test_start_logs_nothing_when_off(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flask_federation"):
        make_app()

    assert not [record for record in caplog.records if "API key cache" in record.getMessage()]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", -1),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "soon"),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", True),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", None),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", float("inf")),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", 301),
        # Strings as the environment gives them.
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "-1"),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "61"),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "nan"),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "inf"),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "true"),
        ("FEDERATION_CREDENTIAL_CACHE_SECONDS", "5s"),
        ("FEDERATION_CREDENTIAL_CACHE_SIZE", "0"),
        ("FEDERATION_CREDENTIAL_CACHE_SIZE", "1e3"),
        ("FEDERATION_CREDENTIAL_CACHE_SIZE", 0),
        ("FEDERATION_CREDENTIAL_CACHE_SIZE", -5),
        ("FEDERATION_CREDENTIAL_CACHE_SIZE", 2.5),
        ("FEDERATION_CREDENTIAL_CACHE_SIZE", "many"),
    ],
)
def test_invalid_cache_setting_names_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        load_settings({key: value})


def test_cache_ttl_above_cap_explains_limit() -> None:
    app = Flask("cache_cap")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_CREDENTIAL_CACHE_SECONDS=61)

    with pytest.raises(ConfigurationError, match="at most 60") as raised:
        Federation(app)

    assert "revoked" in str(raised.value)


def test_cache_settings_parsed() -> None:
    assert load_settings({}).credential_cache_seconds == 0
    assert load_settings({}).credential_cache_size == 10_000
    assert load_settings({"FEDERATION_CREDENTIAL_CACHE_SECONDS": "2.5"}).credential_cache_seconds == 2.5
    assert load_settings({"FEDERATION_CREDENTIAL_CACHE_SECONDS": 60}).credential_cache_seconds == 60
    assert load_settings({"FEDERATION_CREDENTIAL_CACHE_SIZE": "50"}).credential_cache_size == 50
    assert load_settings({"FEDERATION_CREDENTIAL_CACHE_SECONDS": "5"}).credential_cache_seconds == 5
    assert build_credential_cache(load_settings({"FEDERATION_CREDENTIAL_CACHE_SECONDS": "0"})) is None


def principal(subject: str) -> Principal:
    return Principal(Audience.PROVIDER, subject, 1, subject, f"ffp_{subject}", frozenset(), AUTH_METHOD_API_KEY)


def put(cache: CredentialCache, key_id: str, lookup: Any = None) -> None:
    cache.put(
        lookup or cache.begin_lookup(),
        Audience.PROVIDER,
        key_id,
        key_hash="0" * 64,
        principal=principal(key_id),
        expires_at=None,
        last_used_at=utcnow(),
    )


def test_unit_lru_drops_oldest() -> None:
    cache = CredentialCache(ttl_seconds=10, max_entries=2)
    put(cache, "one")
    put(cache, "two")
    assert cache.get(Audience.PROVIDER, "one") is not None
    put(cache, "three")

    assert cache.get(Audience.PROVIDER, "two") is None
    assert cache.get(Audience.PROVIDER, "one") is not None
    assert cache.get(Audience.PROVIDER, "three") is not None


def test_unit_entry_expires_after_ttl() -> None:
    clock = FakeClock()
    cache = CredentialCache(ttl_seconds=10, max_entries=5, clock=clock)
    put(cache, "one")

    clock.now += 9.9
    assert cache.get(Audience.PROVIDER, "one") is not None
    clock.now += 0.1
    assert cache.get(Audience.PROVIDER, "one") is None
    assert len(cache) == 0


def test_unit_audiences_kept_apart() -> None:
    cache = CredentialCache(ttl_seconds=10, max_entries=5)
    put(cache, "one")

    assert cache.get(Audience.DEVELOPER, "one") is None


def test_unit_eviction_during_lookup_blocks_put() -> None:
    cache = CredentialCache(ttl_seconds=10, max_entries=5)
    lookup = cache.begin_lookup()
    cache.evict(Audience.PROVIDER, "one")
    put(cache, "one", lookup)

    assert cache.get(Audience.PROVIDER, "one") is None


def test_unit_threads_keep_bound() -> None:
    cache = CredentialCache(ttl_seconds=10, max_entries=16)
    errors: list[Exception] = []

    def churn(worker: int) -> None:
        try:
            for index in range(2000):
                key_id = f"k{(worker * 7 + index) % 40}"
                put(cache, key_id)
                entry = cache.get(Audience.PROVIDER, key_id)
                assert entry is None or entry.principal.subject_id == key_id
                if index % 50 == 0:
                    cache.evict(Audience.PROVIDER, key_id)
        except Exception as error:  # A failure in a thread would otherwise pass unseen.
            errors.append(error)

    threads = [threading.Thread(target=churn, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(cache) <= 16
