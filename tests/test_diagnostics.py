"""The developer diagnostics route."""

from __future__ import annotations

from typing import Any

from .conftest import World, bearer

DIAGNOSTICS = "/federation/developer/v1/diagnostics"


def test_diagnostics_describes_caller(client: Any, world: World) -> None:
    response = client.get(DIAGNOSTICS, headers={**bearer(world.key_dev), "X-Request-ID": "diag-1"})
    assert response.status_code == 200
    data = response.json["data"]
    assert data["principal"] == {"audience": "developer", "id": world.developer.public_id, "name": "Developer D"}
    assert data["auth_method"] == "api_key"
    assert data["credential"]["id"].startswith("ffd_")
    assert data["entitlements"] == ["audit:read", "diagnostics:read"]
    assert data["feature_flags"]["legacy_auth_enabled"] is True
    assert data["request_id"] == "diag-1"
    assert data["version"]
    assert world.key_dev not in response.get_data(as_text=True)


def test_diagnostics_requires_entitlement(client: Any, world: World) -> None:
    response = client.get(DIAGNOSTICS, headers=bearer(world.key_dev_no_diagnostics))
    assert response.status_code == 403
    assert "diagnostics:read" in response.json["error"]["message"]
