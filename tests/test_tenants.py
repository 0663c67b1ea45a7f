"""Tenant list and read routes: scoping, filters and keyset pagination."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_federation import admin

from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"


def _add_tenants(provider_id: str, count: int, start: int = 0, status: str = "active") -> None:
    for number in range(start, start + count):
        admin.create_tenant(provider_id, name=f"T {number}", slug=f"t-{number}", region="eu-west-1", status=status)


def test_list_returns_own_tenants_only(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 200
    assert response.json["ok"] is True
    ids = [item["id"] for item in response.json["data"]["items"]]
    assert ids == [world.tenant_a.public_id]
    assert response.json["data"]["next_cursor"] is None


def test_tenant_fields(client: Any, world: World) -> None:
    item = client.get(f"{TENANTS}/{world.tenant_a.public_id}", headers=bearer(world.key_a)).json["data"]
    assert item["id"].startswith("ten_")
    assert item["provider_id"] == world.provider_a.public_id
    assert item["slug"] == "a-one"
    assert item["status"] == "active"
    assert item["region"] == "eu-west-1"
    assert item["metadata"] == {}
    assert item["created_at"].endswith("+00:00")


def test_foreign_tenant_indistinguishable_from_missing(client: Any, world: World) -> None:
    foreign = client.get(f"{TENANTS}/{world.tenant_b.public_id}", headers=bearer(world.key_a))
    missing = client.get(f"{TENANTS}/ten_doesnotexist", headers=bearer(world.key_a))
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json["error"]["code"] == missing.json["error"]["code"] == "not_found"
    assert foreign.json["error"]["message"].replace(world.tenant_b.public_id, "X") == missing.json["error"][
        "message"
    ].replace("ten_doesnotexist", "X")


def test_status_filter(client: Any, world: World) -> None:
    _add_tenants(world.provider_a.public_id, 3, status="suspended")
    items = client.get(f"{TENANTS}?status=suspended", headers=bearer(world.key_a)).json["data"]["items"]
    assert len(items) == 3
    assert {item["status"] for item in items} == {"suspended"}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "status=deleted", "unknown=1", "cursor="])
def test_invalid_query_rejected(client: Any, world: World, query: str) -> None:
    response = client.get(f"{TENANTS}?{query}", headers=bearer(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert response.json["error"]["details"]


def test_pagination_walks_all_newest_first(client: Any, world: World) -> None:
    _add_tenants(world.provider_a.public_id, 24)
    seen: list[str] = []
    cursor = None
    while True:
        url = f"{TENANTS}?limit=5" + (f"&cursor={cursor}" if cursor else "")
        data = client.get(url, headers=bearer(world.key_a)).json["data"]
        seen.extend(item["slug"] for item in data["items"])
        cursor = data["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 25
    assert len(set(seen)) == 25
    assert seen[0] == "t-23"
    assert seen[-1] == "a-one"


def test_pagination_with_inserts_between_pages(client: Any, world: World) -> None:
    _add_tenants(world.provider_a.public_id, 10)
    first = client.get(f"{TENANTS}?limit=4", headers=bearer(world.key_a)).json["data"]
    _add_tenants(world.provider_a.public_id, 5, start=100)
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        data = client.get(f"{TENANTS}?limit=4&cursor={cursor}", headers=bearer(world.key_a)).json["data"]
        rest.extend(item["slug"] for item in data["items"])
        cursor = data["next_cursor"]

    slugs = [item["slug"] for item in first["items"]] + rest
    assert len(slugs) == 11
    assert len(set(slugs)) == 11
    assert not any(slug.startswith("t-1") and len(slug) == 5 for slug in slugs)


def test_cursor_tampering_rejected(client: Any, world: World) -> None:
    _add_tenants(world.provider_a.public_id, 3)
    cursor = client.get(f"{TENANTS}?limit=1", headers=bearer(world.key_a)).json["data"]["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    response = client.get(f"{TENANTS}?limit=1&cursor={tampered}", headers=bearer(world.key_a))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_cursor_of_other_provider_rejected(client: Any, world: World) -> None:
    _add_tenants(world.provider_a.public_id, 3)
    cursor = client.get(f"{TENANTS}?limit=1", headers=bearer(world.key_a)).json["data"]["next_cursor"]
    response = client.get(f"{TENANTS}?limit=1&cursor={cursor}", headers=bearer(world.key_b))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_cursor_bound_to_filters(client: Any, world: World) -> None:
    _add_tenants(world.provider_a.public_id, 3)
    cursor = client.get(f"{TENANTS}?limit=1", headers=bearer(world.key_a)).json["data"]["next_cursor"]
    response = client.get(f"{TENANTS}?limit=1&status=active&cursor={cursor}", headers=bearer(world.key_a))
    assert response.status_code == 400


def test_service_usable_without_http(app: Flask, world: World) -> None:
    from flask_federation.auth.principal import Principal
    from flask_federation.entitlements import Audience
    from flask_federation.services import tenants

    principal = Principal(
        Audience.PROVIDER,
        world.provider_a.public_id,
        world.provider_a.id,
        "A",
        None,
        frozenset({"tenants:read"}),
        "api_key",
    )
    page = tenants.list_tenants(principal, limit=10)
    assert [tenant.public_id for tenant in page.items] == [world.tenant_a.public_id]
