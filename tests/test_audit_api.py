"""The audit routes and service: own events only, newest first, keyset pagination and filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from flask_federation.auth.principal import AUTH_METHOD_API_KEY, Principal
from flask_federation.entitlements import Audience
from flask_federation.errors import Forbidden
from flask_federation.services.audit import list_audit_events

from .audit_support import only_event
from .conftest import World, bearer

PROVIDER_AUDIT = "/federation/provider/v1/audit"
DEVELOPER_AUDIT = "/federation/developer/v1/audit"
TENANTS = "/federation/provider/v1/tenants"


def _walk(client: Any, key: str, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = client.get(PROVIDER_AUDIT, headers=bearer(key), query_string=params)
        assert response.status_code == 200, response.json
        items.extend(response.json["data"]["items"])
        cursor = response.json["data"]["next_cursor"]
        if cursor is None:
            return items


def test_provider_sees_own_chain_only(client: Any, world: World) -> None:
    client.get(TENANTS, headers=bearer(world.key_a))
    client.get(TENANTS, headers=bearer(world.key_b))
    client.get(TENANTS)
    items = client.get(PROVIDER_AUDIT, headers=bearer(world.key_a)).json["data"]["items"]
    assert items
    assert {item["chain"] for item in items} == {f"provider:{world.provider_a.public_id}"}
    assert {item["owner_id"] for item in items} == {world.provider_a.public_id}
    assert items[0]["action"] == "tenant.list"
    assert {"key.issue", "tenant.create", "provider.create"} <= {item["action"] for item in items}


def test_newest_first_and_complete(client: Any, world: World) -> None:
    for _ in range(4):
        client.get(TENANTS, headers=bearer(world.key_a))
    items = _walk(client, world.key_a, limit=3)
    sequences = [item["sequence"] for item in items]
    assert sequences == sorted(sequences, reverse=True)
    assert len(set(sequences)) == len(sequences)
    # Each page read is itself recorded after its page was built, so the walk may miss only those.
    assert min(sequences) == 1


def test_audit_read_is_recorded(client: Any, world: World) -> None:
    response = client.get(PROVIDER_AUDIT, headers=bearer(world.key_a), query_string={"limit": 2})
    event = only_event(response)
    assert event.action == "audit.read"
    assert event.result_count == 2


def test_filters(client: Any, world: World) -> None:
    client.get(TENANTS, headers=bearer(world.key_a))
    client.get(f"{TENANTS}/ten_missing", headers=bearer(world.key_a))
    denied = _walk(client, world.key_a, outcome="denied")
    assert [item["action"] for item in denied] == ["tenant.read"]
    listed = _walk(client, world.key_a, action="tenant.list")
    assert [item["outcome"] for item in listed] == ["success"]


def test_time_range(client: Any, world: World) -> None:
    client.get(TENANTS, headers=bearer(world.key_a))
    middle = dt.datetime.now(dt.UTC)
    client.get(f"{TENANTS}/{world.tenant_a.public_id}", headers=bearer(world.key_a))
    later = _walk(client, world.key_a, since=middle.isoformat(), action="tenant.read")
    earlier = _walk(client, world.key_a, until=middle.isoformat(), action="tenant.read")
    assert len(later) == 1
    assert earlier == []
    assert _walk(client, world.key_a, until=middle.isoformat(), action="tenant.list")


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2025-01-01T00:00:00"},
        {"since": "yesterday"},
        {"since": "2025-02-01T00:00:00+00:00", "until": "2025-01-01T00:00:00+00:00"},
        {"outcome": "maybe"},
        {"limit": "0"},
        {"unknown": "1"},
    ],
)
def test_invalid_queries_rejected(client: Any, world: World, query: dict[str, str]) -> None:
    response = client.get(PROVIDER_AUDIT, headers=bearer(world.key_a), query_string=query)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def test_cursor_bound_to_caller_and_filters(client: Any, world: World) -> None:
    for _ in range(3):
        client.get(TENANTS, headers=bearer(world.key_a))
    cursor = client.get(PROVIDER_AUDIT, headers=bearer(world.key_a), query_string={"limit": 1}).json["data"][
        "next_cursor"
    ]
    assert cursor
    other_filter = client.get(
        PROVIDER_AUDIT, headers=bearer(world.key_a), query_string={"limit": 1, "cursor": cursor, "outcome": "denied"}
    )
    other_caller = client.get(PROVIDER_AUDIT, headers=bearer(world.key_b), query_string={"limit": 1, "cursor": cursor})
    assert other_filter.status_code == other_caller.status_code == 400
    assert other_caller.json["error"]["code"] == "invalid_cursor"


def test_entitlement_required(client: Any, world: World) -> None:
    response = client.get(PROVIDER_AUDIT, headers=bearer(world.key_a_read_only))
    assert response.status_code == 403
    event = only_event(response)
    assert (event.action, event.outcome) == ("audit.read", "denied")


def test_developer_route(client: Any, world: World) -> None:
    client.get("/federation/developer/v1/diagnostics", headers=bearer(world.key_dev))
    items = client.get(DEVELOPER_AUDIT, headers=bearer(world.key_dev)).json["data"]["items"]
    assert {item["chain"] for item in items} == {f"developer:{world.developer.public_id}"}
    assert items[0]["action"] == "diagnostics.read"
    assert client.get(DEVELOPER_AUDIT, headers=bearer(world.key_a)).status_code == 401


def _principal(world: World, entitlements: frozenset[str]) -> Principal:
    return Principal(
        audience=Audience.PROVIDER,
        subject_id=world.provider_a.public_id,
        subject_pk=world.provider_a.id,
        display_name="Provider A",
        credential_id=None,
        entitlements=entitlements,
        auth_method=AUTH_METHOD_API_KEY,
    )


def test_service_without_http(app: Flask, world: World) -> None:
    page = list_audit_events(_principal(world, frozenset({"audit:read"})), action="key.issue", limit=10)
    assert len(page.items) == 3
    assert all(item["target_type"] == "api_key" for item in page.items)
    with pytest.raises(Forbidden):
        list_audit_events(_principal(world, frozenset({"tenants:read"})))
