"""Access tokens from the local OpenID provider on the real federation routes, in each auth mode."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_federation import current_principal, with_provider_auth

from ..conftest import World, bearer
from .apps import oidc_config
from .idp import DEVELOPER_AUDIENCE, PROVIDER_AUDIENCE, LocalIdP

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


@pytest.fixture
def dual_app(make_app: Callable[..., Flask], idp: LocalIdP) -> Iterator[Flask]:
    app = make_app(**oidc_config(idp.issuer))

    @app.get("/host/whoami")
    @with_provider_auth("tenants:read")
    def whoami() -> Any:
        return jsonify(subject=current_principal.subject_id, auth_method=current_principal.auth_method)

    with app.app_context():
        yield app


@pytest.fixture
def dual_world(dual_app: Flask) -> World:
    return World()


def provider_token(idp: LocalIdP, world: World, scope: str = "tenants:read tenants:write") -> str:
    return idp.client_credentials_token(PROVIDER_AUDIENCE, scope, provider_id=world.provider_a.public_id)


def developer_token(idp: LocalIdP, world: World, scope: str = "diagnostics:read") -> str:
    return idp.client_credentials_token(DEVELOPER_AUDIENCE, scope, developer_id=world.developer.public_id)


def assert_invalid_token(response: Any, message_part: str) -> None:
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert message_part in response.json["error"]["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="federation", error="invalid_token"'


def test_provider_token_lists_own_tenants(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    response = dual_app.test_client().get(TENANTS, headers=bearer(provider_token(idp, dual_world)))

    assert response.status_code == 200
    assert [item["id"] for item in response.json["data"]["items"]] == [dual_world.tenant_a.public_id]


def test_provider_token_on_host_route(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    response = dual_app.test_client().get("/host/whoami", headers=bearer(provider_token(idp, dual_world)))

    assert response.json == {"subject": dual_world.provider_a.public_id, "auth_method": "oidc_bearer"}


def test_developer_token_in_diagnostics(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    token = developer_token(idp, dual_world)
    client = dual_app.test_client()
    client.get(DIAGNOSTICS, headers=bearer(dual_world.key_dev))

    response = client.get(DIAGNOSTICS, headers=bearer(token))
    assert response.status_code == 200
    data = response.json["data"]
    assert data["principal"]["id"] == dual_world.developer.public_id
    assert data["auth_method"] == "oidc_bearer"
    assert data["credential"] == {"id": claims_of(token)["jti"], "created_at": None, "expires_at": None, "last_used_at": None}
    assert data["entitlements"] == ["diagnostics:read"]
    assert data["feature_flags"] == {"legacy_auth_enabled": True, "oidc_enabled": True}
    assert data["recent_requests"]["by_auth_method"] == {"api_key": 1, "oidc_bearer": 1, "oidc_session": 0}
    assert token not in response.get_data(as_text=True)


def test_provider_token_on_developer_route(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    response = dual_app.test_client().get(DIAGNOSTICS, headers=bearer(provider_token(idp, dual_world)))

    assert_invalid_token(response, "audience mismatch")


def test_developer_token_on_provider_route(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    response = dual_app.test_client().get(TENANTS, headers=bearer(developer_token(idp, dual_world)))

    assert_invalid_token(response, "audience mismatch")


def test_unknown_provider_id_rejected(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    token = idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", provider_id="prv_nobody")

    assert_invalid_token(dual_app.test_client().get(TENANTS, headers=bearer(token)), "names no known provider")


def test_token_without_provider_id_rejected(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    token = idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read")

    assert_invalid_token(dual_app.test_client().get(TENANTS, headers=bearer(token)), "no valid provider_id claim")


def test_developer_id_does_not_name_provider(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    token = idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", developer_id=dual_world.developer.public_id)

    assert_invalid_token(dual_app.test_client().get(TENANTS, headers=bearer(token)), "no valid provider_id claim")


def test_missing_scope_forbidden(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    response = dual_app.test_client().get(TENANTS, headers=bearer(provider_token(idp, dual_world, "audit:read")))

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert response.json["error"]["details"] == {"missing_entitlements": ["tenants:read"]}
    assert "tenants:read" in response.json["error"]["message"]


def test_scope_map_renames_scopes(make_app: Callable[..., Flask], idp: LocalIdP) -> None:
    # The IdP's resource only knows the catalogue scopes, so map one of them to another entitlement set.
    app = make_app(**oidc_config(idp.issuer, FEDERATION_OIDC_SCOPE_MAP={"audit:read": ["tenants:read"]}))
    with app.app_context():
        world = World()
        client = app.test_client()

        mapped = client.get(TENANTS, headers=bearer(provider_token(idp, world, "audit:read")))
        unmapped = client.get(TENANTS, headers=bearer(provider_token(idp, world, "tenants:read")))

    assert mapped.status_code == 200
    assert unmapped.status_code == 403


def test_dual_mode_accepts_key_and_token(dual_app: Flask, dual_world: World, idp: LocalIdP) -> None:
    client = dual_app.test_client()

    assert client.get(TENANTS, headers=bearer(dual_world.key_a)).status_code == 200
    assert client.get(TENANTS, headers=bearer(provider_token(idp, dual_world))).status_code == 200


def test_oidc_only_rejects_api_key(make_app: Callable[..., Flask], idp: LocalIdP) -> None:
    app = make_app(**oidc_config(idp.issuer, FEDERATION_LEGACY_AUTH_ENABLED=False))
    with app.app_context():
        world = World()
        client = app.test_client()

        key_response = client.get(TENANTS, headers=bearer(world.key_a))
        token_response = client.get(TENANTS, headers=bearer(provider_token(idp, world)))
        diagnostics = client.get(DIAGNOSTICS, headers=bearer(developer_token(idp, world))).json["data"]

    assert_invalid_token(key_response, "API keys are no longer accepted here")
    assert token_response.status_code == 200
    assert diagnostics["feature_flags"] == {"legacy_auth_enabled": False, "oidc_enabled": True}


def test_legacy_only_rejects_token(make_app: Callable[..., Flask], idp: LocalIdP) -> None:
    app = make_app()
    with app.app_context():
        world = World()
        response = app.test_client().get(TENANTS, headers=bearer(provider_token(idp, world)))

    assert_invalid_token(response, "not a valid API key")
