"""Tenant create and update routes and services: validation, scoping, entitlements and body limits."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from flask_federation import admin
from flask_federation.auth.principal import Principal
from flask_federation.entitlements import Audience
from flask_federation.errors import Forbidden
from flask_federation.models import Tenant
from flask_federation.services import tenants
from flask_federation.state import get_state

from .conftest import StatementCounter, World, bearer
from .servers import serve_app

TENANTS = "/federation/provider/v1/tenants"
NEW_TENANT = {"name": "Shop", "slug": "shop", "region": "eu-west-1"}


def _headers(key: str, idempotency_key: str | None = None) -> dict[str, str]:
    return {**bearer(key), "Idempotency-Key": idempotency_key or uuid.uuid4().hex}


def _tenant_count() -> int:
    return int(get_state().session.execute(select(func.count()).select_from(Tenant)).scalar_one())


def _principal(world: World, *entitlements: str) -> Principal:
    return Principal(
        Audience.PROVIDER,
        world.provider_a.public_id,
        world.provider_a.id,
        "Provider A",
        None,
        frozenset(entitlements),
        "api_key",
    )


def test_create_returns_201_with_location(client: Any, world: World) -> None:
    response = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_a))
    assert response.status_code == 201
    data = response.json["data"]
    assert data["id"].startswith("ten_")
    assert data["provider_id"] == world.provider_a.public_id
    assert data["slug"] == "shop"
    assert data["status"] == "active"
    assert data["metadata"] == {}
    assert response.headers["Location"] == f"{TENANTS}/{data['id']}"
    fetched = client.get(response.headers["Location"], headers=bearer(world.key_a))
    assert fetched.json["data"] == data


def test_create_accepts_status_and_metadata(client: Any, world: World) -> None:
    body = {**NEW_TENANT, "status": "suspended", "metadata": {"plan": "team", "seats": 5}}
    response = client.post(TENANTS, json=body, headers=_headers(world.key_a))
    assert response.status_code == 201
    assert response.json["data"]["status"] == "suspended"
    assert response.json["data"]["metadata"] == {"plan": "team", "seats": 5}


def test_create_missing_fields_rejected(client: Any, world: World) -> None:
    response = client.post(TENANTS, json={"name": "Only a name"}, headers=_headers(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == {"slug", "region"}


@pytest.mark.parametrize(
    "field", ["id", "provider_id", "created_at", "updated_at", "owner", "provider_pk", "metadata_"]
)
def test_create_rejects_mass_assignment(client: Any, world: World, field: str) -> None:
    before = _tenant_count()
    response = client.post(TENANTS, json={**NEW_TENANT, field: "x"}, headers=_headers(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["details"]
    assert _tenant_count() == before


def test_read_only_field_named_as_read_only(client: Any, world: World) -> None:
    response = client.post(TENANTS, json={**NEW_TENANT, "id": "ten_mine"}, headers=_headers(world.key_a))
    assert "Read-only" in response.json["error"]["details"]["id"][0]


def test_create_duplicate_slug_conflict(client: Any, world: World) -> None:
    response = client.post(TENANTS, json={**NEW_TENANT, "slug": "a-one"}, headers=_headers(world.key_a))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert "a-one" in response.json["error"]["message"]


def test_same_slug_allowed_for_other_provider(client: Any, world: World) -> None:
    response = client.post(TENANTS, json={**NEW_TENANT, "slug": "a-one"}, headers=_headers(world.key_b))
    assert response.status_code == 201
    assert response.json["data"]["provider_id"] == world.provider_b.public_id


def test_write_requires_provider_audience(client: Any, world: World) -> None:
    developer = client.post(TENANTS, json=NEW_TENANT, headers=_headers(world.key_dev))
    anonymous = client.post(TENANTS, json=NEW_TENANT, headers={"Idempotency-Key": "k"})
    assert developer.status_code == 401
    assert "provider" in developer.json["error"]["message"]
    assert anonymous.status_code == 401
    assert anonymous.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("method", ["post", "patch"])
def test_read_only_key_forbidden_without_tenant_query(
    client: Any, world: World, count_statements: StatementCounter, method: str
) -> None:
    path = TENANTS if method == "post" else f"{TENANTS}/{world.tenant_a.public_id}"
    headers = _headers(world.key_a_read_only)
    count_statements.statements.clear()
    response = getattr(client, method)(path, json=NEW_TENANT, headers=headers)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert response.json["error"]["details"] == {"missing_entitlements": ["tenants:write"]}
    assert not [statement for statement in count_statements.statements if "federation_tenants" in statement]


def test_services_deny_before_any_query(app: Flask, world: World, count_statements: StatementCounter) -> None:
    reader = _principal(world, "tenants:read")
    tenant_id = world.tenant_a.public_id
    count_statements.statements.clear()
    with pytest.raises(Forbidden):
        tenants.create_tenant(reader, NEW_TENANT)

    with pytest.raises(Forbidden):
        tenants.update_tenant(reader, tenant_id, {"name": "New"})

    assert count_statements.statements == []


def test_services_usable_without_http(app: Flask, world: World) -> None:
    writer = _principal(world, "tenants:write")
    created = tenants.create_tenant(writer, {**NEW_TENANT, "metadata": {"a": 1}})
    updated = tenants.update_tenant(writer, created.public_id, {"name": "Renamed", "status": "suspended"})
    assert updated.public_id == created.public_id
    assert updated.name == "Renamed"
    assert updated.status == "suspended"
    assert updated.metadata_ == {"a": 1}


def test_patch_renames(client: Any, world: World) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    before = client.get(path, headers=bearer(world.key_a)).json["data"]
    response = client.patch(path, json={"name": "Renamed"}, headers=_headers(world.key_a))
    assert response.status_code == 200
    data = response.json["data"]
    assert data["name"] == "Renamed"
    assert data["slug"] == before["slug"]
    assert data["region"] == before["region"]
    assert data["created_at"] == before["created_at"]
    assert data["updated_at"] > before["updated_at"]


def test_patch_suspends_and_resumes(client: Any, world: World) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    suspended = client.patch(path, json={"status": "suspended"}, headers=_headers(world.key_a))
    assert suspended.json["data"]["status"] == "suspended"
    resumed = client.patch(path, json={"status": "active"}, headers=_headers(world.key_a))
    assert resumed.json["data"]["status"] == "active"
    invalid = client.patch(path, json={"status": "deleted"}, headers=_headers(world.key_a))
    assert invalid.status_code == 422
    assert "status" in invalid.json["error"]["details"]


def test_patch_replaces_metadata_whole(client: Any, world: World) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    client.patch(path, json={"metadata": {"a": 1, "b": 2}}, headers=_headers(world.key_a))
    response = client.patch(path, json={"metadata": {"c": 3}}, headers=_headers(world.key_a))
    assert response.json["data"]["metadata"] == {"c": 3}
    cleared = client.patch(path, json={"metadata": {}}, headers=_headers(world.key_a))
    assert cleared.json["data"]["metadata"] == {}


def test_patch_changes_slug(client: Any, world: World) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    response = client.patch(path, json={"slug": "a-renamed"}, headers=_headers(world.key_a))
    assert response.status_code == 200
    assert response.json["data"]["slug"] == "a-renamed"


def test_patch_duplicate_slug_conflict(client: Any, world: World) -> None:
    other = admin.create_tenant(world.provider_a.public_id, name="A two", slug="a-two", region="eu-west-1")
    response = client.patch(f"{TENANTS}/{other.public_id}", json={"slug": "a-one"}, headers=_headers(world.key_a))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert "'a-one'" in response.json["error"]["message"]
    unchanged = client.get(f"{TENANTS}/{other.public_id}", headers=bearer(world.key_a))
    assert unchanged.json["data"]["slug"] == "a-two"


def test_patch_region_rejected(client: Any, world: World) -> None:
    response = client.patch(
        f"{TENANTS}/{world.tenant_a.public_id}", json={"region": "us-east-1"}, headers=_headers(world.key_a)
    )
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "fixed when the tenant is created" in response.json["error"]["details"]["region"][0]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "ten_x"},
        {"provider_id": "prv_x"},
        {"created_at": "2020-01-01T00:00:00+00:00"},
        {"updated_at": "2020-01-01T00:00:00+00:00"},
        {"owner": "someone"},
        {"name": "Fine", "provider_id": "prv_x"},
        {"name": None},
        {"metadata": None},
        {"metadata": [1, 2]},
        {"slug": "Not A Slug"},
    ],
)
def test_patch_rejects_bad_fields_unapplied(client: Any, world: World, body: dict[str, Any]) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    response = client.patch(path, json=body, headers=_headers(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert client.get(path, headers=bearer(world.key_a)).json["data"]["name"] == "A one"


def test_patch_empty_body_rejected(client: Any, world: World) -> None:
    response = client.patch(f"{TENANTS}/{world.tenant_a.public_id}", json={}, headers=_headers(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "metadata, name, slug, status" in response.json["error"]["message"]


def test_patch_foreign_tenant_indistinguishable_from_missing(client: Any, world: World) -> None:
    foreign = client.patch(
        f"{TENANTS}/{world.tenant_b.public_id}", json={"name": "Mine now"}, headers=_headers(world.key_a)
    )
    missing = client.patch(f"{TENANTS}/ten_doesnotexist", json={"name": "Mine now"}, headers=_headers(world.key_a))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json["error"]["code"] == missing.json["error"]["code"] == "not_found"
    assert foreign.json["error"]["message"].replace(world.tenant_b.public_id, "X") == missing.json["error"][
        "message"
    ].replace("ten_doesnotexist", "X")
    untouched = client.get(f"{TENANTS}/{world.tenant_b.public_id}", headers=bearer(world.key_b))
    assert untouched.json["data"]["name"] == "B one"


@pytest.fixture(params=["post", "patch"])
def write_path(request: pytest.FixtureRequest, world: World) -> tuple[str, str]:
    if request.param == "post":
        return "POST", TENANTS

    return "PATCH", f"{TENANTS}/{world.tenant_a.public_id}"


def test_malformed_json_rejected(client: Any, world: World, write_path: tuple[str, str]) -> None:
    method, path = write_path
    headers = {**_headers(world.key_a), "Content-Type": "application/json"}
    response = client.open(path, method=method, data=b'{"name": ', headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


def test_json_array_rejected(client: Any, world: World, write_path: tuple[str, str]) -> None:
    method, path = write_path
    response = client.open(path, method=method, json=[NEW_TENANT], headers=_headers(world.key_a))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


def test_deeply_nested_json_rejected(client: Any, world: World, write_path: tuple[str, str]) -> None:
    method, path = write_path
    nested = '{"metadata": {"a": ' + "[" * 5000 + "]" * 5000 + "}}"
    headers = {**_headers(world.key_a), "Content-Type": "application/json"}
    response = client.open(path, method=method, data=nested, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"
    assert "nested" in response.json["error"]["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_rejected(
    client: Any, world: World, write_path: tuple[str, str], content_type: str | None
) -> None:
    method, path = write_path
    headers = _headers(world.key_a)
    if content_type is not None:
        headers["Content-Type"] = content_type

    response = client.open(path, method=method, data=json.dumps(NEW_TENANT), headers=headers)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_media_type"


@pytest.fixture
def small_body_app(make_app: Any) -> Iterator[Flask]:
    app = make_app(FEDERATION_MAX_BODY_BYTES=1024)
    with app.app_context():
        yield app


def test_oversized_body_rejected(small_body_app: Flask) -> None:
    world = World()
    body = {**NEW_TENANT, "metadata": {"blob": "x" * 2000}}
    response = small_body_app.test_client().post(TENANTS, json=body, headers=_headers(world.key_a))
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert "1024" in response.json["error"]["message"]


def test_body_limit_is_inclusive(small_body_app: Flask) -> None:
    world = World()
    client = small_body_app.test_client()
    for size, status in [(1024, 201), (1025, 413)]:
        body = {**NEW_TENANT, "slug": f"shop-{size}", "metadata": {"pad": ""}}
        padding = size - len(json.dumps(body).encode())
        body["metadata"] = {"pad": "x" * padding}
        data = json.dumps(body).encode()
        assert len(data) == size
        headers = {**_headers(world.key_a), "Content-Type": "application/json"}
        response = client.post(TENANTS, data=data, headers=headers)
        assert response.status_code == status, size


def test_oversized_chunked_body_rejected(small_body_app: Flask) -> None:
    world = World()
    payload = json.dumps({**NEW_TENANT, "metadata": {"blob": "x" * 4000}}).encode()
    chunks = (payload[start : start + 500] for start in range(0, len(payload), 500))
    headers = {**_headers(world.key_a), "Content-Type": "application/json"}
    with serve_app(small_body_app) as base_url:
        # A generator body makes requests send Transfer-Encoding: chunked without Content-Length.
        response = requests.post(base_url + TENANTS, data=chunks, headers=headers, timeout=10)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert _tenant_count() == 2


def test_chunked_body_within_limit_accepted(small_body_app: Flask) -> None:
    world = World()
    payload = json.dumps(NEW_TENANT).encode()
    headers = {**_headers(world.key_a), "Content-Type": "application/json"}
    with serve_app(small_body_app) as base_url:
        response = requests.post(base_url + TENANTS, data=iter([payload[:10], payload[10:]]), headers=headers, timeout=10)

    assert response.status_code == 201
    assert response.json()["data"]["slug"] == "shop"
