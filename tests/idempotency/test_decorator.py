"""``with_idempotency_required`` over HTTP, on every store: claims, replays, scoping and the release rules."""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import func, select

from flask_federation import admin, with_developer_auth, with_idempotency_required, with_provider_auth
from flask_federation.models import Provider, Tenant
from flask_federation.services import tenants
from flask_federation.state import get_state

from ..conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"
NEW_TENANT = {"name": "Shop", "slug": "shop", "region": "eu-west-1"}


def _headers(key: str, idempotency_key: str) -> dict[str, str]:
    return {**bearer(key), "Idempotency-Key": idempotency_key}


def _count(model: type[Any], **filters: Any) -> int:
    query = select(func.count()).select_from(model).filter_by(**filters)
    return int(get_state().session.execute(query).scalar_one())


class HostRoutes:
    """Host routes guarded by the decorator in the ways host apps stack it; ``calls`` counts handler runs."""

    def __init__(self, app: Flask) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.status = 201
        self.write_first = False
        calls = self.calls

        @app.post("/host/outer")
        @with_idempotency_required
        @with_provider_auth("tenants:write")
        def outer() -> Any:
            calls["outer"] += 1
            return jsonify(run=calls["outer"], query=request.args.get("q")), 201

        @app.post("/host/inner")
        @with_provider_auth("tenants:write")
        @with_idempotency_required()
        def inner() -> Any:
            calls["inner"] += 1
            return jsonify(run=calls["inner"]), 201

        @app.post("/host/developer")
        @with_idempotency_required
        @with_developer_auth("diagnostics:read")
        def developer() -> Any:
            calls["developer"] += 1
            return jsonify(run=calls["developer"]), 201

        @app.post("/host/scoped")
        @with_idempotency_required(scope=lambda: request.headers.get("X-User", ""))
        def scoped() -> Any:
            calls["scoped"] += 1
            return jsonify(run=calls["scoped"]), 201

        @app.post("/host/unscoped")
        @with_idempotency_required
        def unscoped() -> Any:
            calls["unscoped"] += 1
            return jsonify(run=calls["unscoped"]), 201

        @app.post("/host/status")
        @with_provider_auth("tenants:write")
        @with_idempotency_required
        def status() -> Any:
            calls["status"] += 1
            if self.write_first:
                admin.create_provider(f"Written by run {calls['status']}")

            response = jsonify(run=calls["status"])
            response.status_code = self.status
            response.headers["ETag"] = f'"run-{calls["status"]}"'
            response.headers.add("Link", "</a>; rel=a")
            response.headers.add("Link", "</b>; rel=b")
            response.set_cookie("session", "secret")
            return response

        @app.post("/host/explode")
        @with_provider_auth("tenants:write")
        @with_idempotency_required
        def explode() -> Any:
            calls["explode"] += 1
            if calls["explode"] == 1:
                raise RuntimeError("first run fails")

            return jsonify(run=calls["explode"]), 201

        @app.post("/host/form")
        @with_provider_auth("tenants:write")
        @with_idempotency_required
        def form() -> Any:
            calls["form"] += 1
            return jsonify(name=request.form.get("name")), 201

        @app.post("/host/async")
        @with_provider_auth("tenants:write")
        @with_idempotency_required
        async def asynchronous() -> Any:
            calls["async"] += 1
            return jsonify(run=calls["async"]), 201


@pytest.fixture
def store_app(make_store_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_store_app()
    with app.app_context():
        yield app


@pytest.fixture
def host(store_app: Flask) -> HostRoutes:
    return HostRoutes(store_app)


@pytest.fixture
def world(store_app: Flask) -> World:
    return World()


@pytest.fixture
def client(store_app: Flask) -> Any:
    return store_app.test_client()


def test_missing_key_rejected(client: Any, world: World) -> None:
    response = client.post(TENANTS, json=NEW_TENANT, headers=bearer(world.key_a))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "idempotency_key_missing"
    assert _count(Tenant, slug="shop") == 0


def test_invalid_key_rejected(client: Any, world: World) -> None:
    for value in ["", "k" * 256, "bad\x01key", "caf\xe9"]:
        response = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_a, value))
        assert response.status_code == 400, value
        assert response.json["error"]["code"] == "idempotency_key_invalid", value

    assert _count(Tenant, slug="shop") == 0


def test_authentication_checked_before_key(client: Any, world: World) -> None:
    response = client.post(TENANTS, json=NEW_TENANT)
    assert response.status_code == 401


def test_replay_is_byte_equal(client: Any, world: World) -> None:
    headers = _headers(world.key_a, "create-shop")
    first = client.post(TENANTS, json=NEW_TENANT, headers=headers)
    second = client.post(TENANTS, json=NEW_TENANT, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert _count(Tenant, slug="shop") == 1


def test_quoted_and_bare_key_are_one_key(client: Any, world: World) -> None:
    first = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_a, "same"))
    second = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_a, '"same"'))
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_data() == first.get_data()


def test_replay_of_patch(client: Any, world: World) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    headers = _headers(world.key_a, "rename")
    first = client.patch(path, json={"name": "Renamed"}, headers=headers)
    client.patch(path, json={"name": "Renamed again"}, headers=_headers(world.key_a, "rename-2"))
    replay = client.patch(path, json={"name": "Renamed"}, headers=headers)
    assert replay.get_data() == first.get_data()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert client.get(path, headers=bearer(world.key_a)).json["data"]["name"] == "Renamed again"


def test_different_request_same_key_rejected(client: Any, world: World) -> None:
    headers = _headers(world.key_a, "create-shop")
    client.post(TENANTS, json=NEW_TENANT, headers=headers)
    changes: dict[str, dict[str, Any]] = {
        "body": {"json": {**NEW_TENANT, "name": "Other"}},
        "body bytes": {"data": json.dumps(NEW_TENANT, indent=2), "content_type": "application/json"},
        "query": {"json": NEW_TENANT, "query_string": {"dry": "1"}},
    }
    for name, change in changes.items():
        response = client.post(TENANTS, headers=headers, **change)
        assert response.status_code == 422, name
        assert response.json["error"]["code"] == "idempotency_key_reused", name

    assert _count(Tenant, slug="shop") == 1


def test_same_key_on_other_route_independent(client: Any, world: World) -> None:
    headers = _headers(world.key_a, "shared")
    created = client.post(TENANTS, json=NEW_TENANT, headers=headers)
    patched = client.patch(f"{TENANTS}/{world.tenant_a.public_id}", json={"name": "New"}, headers=headers)
    assert created.status_code == 201
    assert patched.status_code == 200
    assert "Idempotent-Replayed" not in patched.headers


def test_same_key_other_tenant_path_rejected(client: Any, world: World) -> None:
    other = admin.create_tenant(world.provider_a.public_id, name="A two", slug="a-two", region="eu-west-1")
    headers = _headers(world.key_a, "rename")
    client.patch(f"{TENANTS}/{world.tenant_a.public_id}", json={"name": "New"}, headers=headers)
    response = client.patch(f"{TENANTS}/{other.public_id}", json={"name": "New"}, headers=headers)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "idempotency_key_reused"


def test_other_principal_same_key_independent(client: Any, world: World) -> None:
    first = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_a, "shared"))
    second = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_b, "shared"))
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert first.json["data"]["provider_id"] != second.json["data"]["provider_id"]
    assert _count(Tenant, slug="shop") == 2


def test_keys_of_one_provider_share_scope(client: Any, world: World) -> None:
    other_key = admin.issue_key(world.provider_a.public_id, ["tenants:write"]).key
    first = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_a, "shared"))
    second = client.post(TENANTS, json=NEW_TENANT, headers=_headers(other_key, "shared"))
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_data() == first.get_data()


def test_validation_error_releases_key(client: Any, world: World) -> None:
    headers = _headers(world.key_a, "create-shop")
    invalid = client.post(TENANTS, json={"name": "No slug"}, headers=headers)
    fixed = client.post(TENANTS, json=NEW_TENANT, headers=headers)
    assert invalid.status_code == 422
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


def test_body_rejections_release_key(client: Any, world: World) -> None:
    bad_requests: dict[int, dict[str, Any]] = {
        400: {"data": b'{"name": ', "content_type": "application/json"},
        415: {"data": b"name=x", "content_type": "application/x-www-form-urlencoded"},
        422: {"json": {**NEW_TENANT, "id": "ten_mine"}},
    }
    for status, bad_request in bad_requests.items():
        headers = _headers(world.key_a, f"create-{status}")
        rejected = client.post(TENANTS, headers=headers, **bad_request)
        retried = client.post(TENANTS, json={**NEW_TENANT, "slug": f"shop-{status}"}, headers=headers)
        assert rejected.status_code == status
        assert retried.status_code == 201, status
        assert "Idempotent-Replayed" not in retried.headers, status


def test_conflict_is_stored_and_replayed(client: Any, world: World) -> None:
    headers = _headers(world.key_a, "create-a-one")
    body = {**NEW_TENANT, "slug": "a-one"}
    first = client.post(TENANTS, json=body, headers=headers)
    client.patch(f"{TENANTS}/{world.tenant_a.public_id}", json={"slug": "freed"}, headers=_headers(world.key_a, "free"))
    replay = client.post(TENANTS, json=body, headers=headers)
    assert first.status_code == replay.status_code == 409
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == first.get_data()
    assert _count(Tenant, slug="a-one") == 0


def test_not_found_is_stored(client: Any, world: World) -> None:
    headers = _headers(world.key_a, "patch-missing")
    first = client.patch(f"{TENANTS}/ten_missing", json={"name": "x"}, headers=headers)
    replay = client.patch(f"{TENANTS}/ten_missing", json={"name": "x"}, headers=headers)
    assert first.status_code == replay.status_code == 404
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_handler_exception_releases_key(client: Any, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    original = tenants.create_tenant

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(tenants, "create_tenant", original)
        raise RuntimeError("injected failure")

    monkeypatch.setattr(tenants, "create_tenant", fail_once)
    headers = _headers(world.key_a, "create-shop")
    failed = client.post(TENANTS, json=NEW_TENANT, headers=headers)
    retried = client.post(TENANTS, json=NEW_TENANT, headers=headers)
    assert failed.status_code == 500
    assert failed.json["error"]["code"] == "internal_error"
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert _count(Tenant, slug="shop") == 1


def test_host_exception_releases_key(client: Any, world: World, host: HostRoutes) -> None:
    headers = _headers(world.key_a, "explode")
    with pytest.raises(RuntimeError, match="first run fails"):
        client.post("/host/explode", headers=headers)

    retried = client.post("/host/explode", headers=headers)
    assert retried.status_code == 201
    assert retried.json == {"run": 2}


def test_rejections_without_writes_release(client: Any, world: World, host: HostRoutes) -> None:
    for status in [400, 401, 403, 413, 415, 422, 429, 500, 503]:
        host.status = status
        runs_before = host.calls["status"]
        headers = _headers(world.key_a, f"status-{status}")
        first = client.post("/host/status", headers=headers)
        second = client.post("/host/status", headers=headers)
        assert first.status_code == second.status_code == status
        assert "Idempotent-Replayed" not in second.headers, status
        assert host.calls["status"] == runs_before + 2, status


def test_other_results_stored(client: Any, world: World, host: HostRoutes) -> None:
    for status in [200, 201, 202, 204, 303, 404, 409, 410]:
        host.status = status
        runs_before = host.calls["status"]
        headers = _headers(world.key_a, f"status-{status}")
        first = client.post("/host/status", headers=headers)
        second = client.post("/host/status", headers=headers)
        assert second.status_code == status
        assert second.headers.get("Idempotent-Replayed") == "true", status
        assert second.get_data() == first.get_data(), status
        assert host.calls["status"] == runs_before + 1, status


def test_rejection_after_write_stored(client: Any, world: World, host: HostRoutes) -> None:
    host.status = 422
    host.write_first = True
    headers = _headers(world.key_a, "status")
    client.post("/host/status", headers=headers)
    second = client.post("/host/status", headers=headers)
    assert second.status_code == 422
    assert second.headers["Idempotent-Replayed"] == "true"
    assert host.calls["status"] == 1
    assert _count(Provider, name="Written by run 1") == 1


def test_server_error_after_write_released(client: Any, world: World, host: HostRoutes) -> None:
    host.status = 500
    host.write_first = True
    headers = _headers(world.key_a, "status")
    client.post("/host/status", headers=headers)
    client.post("/host/status", headers=headers)
    assert host.calls["status"] == 2


def test_replay_repeats_allow_listed_headers_only(client: Any, world: World, host: HostRoutes) -> None:
    headers = _headers(world.key_a, "status")
    first = client.post("/host/status", headers=headers)
    replay = client.post("/host/status", headers=headers)
    assert replay.headers["ETag"] == first.headers["ETag"] == '"run-1"'
    assert replay.headers.getlist("Link") == first.headers.getlist("Link") == ["</a>; rel=a", "</b>; rel=b"]
    assert "Set-Cookie" in first.headers
    assert "Set-Cookie" not in replay.headers


def test_decorator_outside_auth_authenticates(client: Any, world: World, host: HostRoutes) -> None:
    anonymous = client.post("/host/outer", headers={"Idempotency-Key": "k"})
    read_only = client.post("/host/outer", headers=_headers(world.key_a_read_only, "k"))
    first = client.post("/host/outer", headers=_headers(world.key_a, "k"))
    replay = client.post("/host/outer", headers=_headers(world.key_a, "k"))
    other = client.post("/host/outer", headers=_headers(world.key_b, "k"))
    assert anonymous.status_code == 401
    assert read_only.status_code == 403
    assert first.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert other.json == {"run": 2, "query": None}
    assert host.calls["outer"] == 2


def test_replay_outside_auth_checks_entitlements(client: Any, world: World, host: HostRoutes) -> None:
    # The stored response of a write must not reach a credential of the same provider that lacks the
    # write entitlement, even when it repeats the key and the request exactly.
    first = client.post("/host/outer", headers=_headers(world.key_a, "k"))
    read_only = client.post("/host/outer", headers=_headers(world.key_a_read_only, "k"))
    assert first.status_code == 201
    assert read_only.status_code == 403
    assert read_only.json["error"]["code"] == "forbidden"
    assert "Idempotent-Replayed" not in read_only.headers


def test_forbidden_inside_does_not_burn_key(client: Any, world: World, host: HostRoutes) -> None:
    key_a_write = admin.issue_key(world.provider_a.public_id, ["tenants:write"]).key
    denied = client.post("/host/outer", headers=_headers(world.key_a_read_only, "k"))
    allowed = client.post("/host/outer", headers=_headers(key_a_write, "k"))
    assert denied.status_code == 403
    assert allowed.status_code == 201
    assert "Idempotent-Replayed" not in allowed.headers


def test_decorator_inside_auth(client: Any, world: World, host: HostRoutes) -> None:
    missing = client.post("/host/inner", headers=bearer(world.key_a))
    first = client.post("/host/inner", headers=_headers(world.key_a, "k"))
    replay = client.post("/host/inner", headers=_headers(world.key_a, "k"))
    assert missing.json["error"]["code"] == "idempotency_key_missing"
    assert replay.get_data() == first.get_data()
    assert host.calls["inner"] == 1


def test_developer_and_provider_scopes_apart(client: Any, world: World, host: HostRoutes) -> None:
    developer = client.post("/host/developer", headers=_headers(world.key_dev, "k"))
    replay = client.post("/host/developer", headers=_headers(world.key_dev, "k"))
    assert developer.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_scope_function_scopes_keys(client: Any, host: HostRoutes) -> None:
    alice = client.post("/host/scoped", headers={"X-User": "alice", "Idempotency-Key": "k"})
    alice_again = client.post("/host/scoped", headers={"X-User": "alice", "Idempotency-Key": "k"})
    bob = client.post("/host/scoped", headers={"X-User": "bob", "Idempotency-Key": "k"})
    assert alice.json == {"run": 1}
    assert alice_again.headers["Idempotent-Replayed"] == "true"
    assert bob.json == {"run": 2}


def test_empty_scope_raises(client: Any, host: HostRoutes) -> None:
    with pytest.raises(RuntimeError, match="stable, non-empty id"):
        client.post("/host/scoped", headers={"Idempotency-Key": "k"})

    assert host.calls["scoped"] == 0


def test_unscoped_route_raises_at_first_use(client: Any, host: HostRoutes) -> None:
    with pytest.raises(RuntimeError, match="with_provider_auth or with_developer_auth"):
        client.post("/host/unscoped", headers={"Idempotency-Key": "k"})

    assert host.calls["unscoped"] == 0


def test_form_body_readable_after_fingerprint(client: Any, world: World, host: HostRoutes) -> None:
    headers = _headers(world.key_a, "form")
    first = client.post("/host/form", data={"name": "Ada"}, headers=headers)
    changed = client.post("/host/form", data={"name": "Bob"}, headers=headers)
    assert first.json == {"name": "Ada"}
    assert changed.json["error"]["code"] == "idempotency_key_reused"


def test_async_view_supported(client: Any, world: World, host: HostRoutes) -> None:
    first = client.post("/host/async", headers=_headers(world.key_a, "k"))
    replay = client.post("/host/async", headers=_headers(world.key_a, "k"))
    assert first.status_code == 201
    assert replay.get_data() == first.get_data()
    assert host.calls["async"] == 1


def test_oversized_body_rejected_before_claim(make_store_app: Callable[..., Flask]) -> None:
    app = make_store_app(FEDERATION_MAX_BODY_BYTES=256)
    with app.app_context():
        world = World()
        client = app.test_client()
        headers = _headers(world.key_a, "big")
        too_large = client.post(TENANTS, json={**NEW_TENANT, "metadata": {"x": "y" * 300}}, headers=headers)
        fitting = client.post(TENANTS, json=NEW_TENANT, headers=headers)

    assert too_large.status_code == 413
    assert too_large.json["error"]["code"] == "payload_too_large"
    assert fitting.status_code == 201


def test_each_request_gets_new_key_when_unique(client: Any, world: World) -> None:
    slugs = [f"shop-{number}" for number in range(3)]
    for slug in slugs:
        response = client.post(TENANTS, json={**NEW_TENANT, "slug": slug}, headers=_headers(world.key_a, uuid.uuid4().hex))
        assert response.status_code == 201

    assert _count(Tenant, provider_id=world.provider_a.id) == 4
