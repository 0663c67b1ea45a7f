"""The browser login in the Flask session: which guards accept it, expiry, audiences and CSRF.

These tests put a completed login into the session directly; tests/oidc/
drives the real login flow against the local OpenID provider.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient

from flask_federation import admin, current_principal, with_provider_auth
from flask_federation.auth.oidc_session import SESSION_KEY, SessionLogin
from flask_federation.entitlements import Audience
from flask_federation.models import Provider
from flask_federation.state import get_state

from .conftest import World, bearer
from .test_oidc_config import closed_loopback_url

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"
HOST_ACTION = "/host/tenant-action"
SAME_ORIGIN = "http://localhost"


def login_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "FEDERATION_OIDC_ENABLED": True,
        # Nothing listens there: these tests must work without any provider.
        "FEDERATION_OIDC_ISSUER": closed_loopback_url(),
        "FEDERATION_OIDC_REQUIRE_HTTPS": False,
        "FEDERATION_OIDC_PROVIDER_AUDIENCE": "urn:federation:provider",
        "FEDERATION_OIDC_DEVELOPER_AUDIENCE": "urn:federation:developer",
        "FEDERATION_OIDC_LOGIN_ENABLED": True,
        "FEDERATION_OIDC_CLIENT_ID": "federation-test",
        "FEDERATION_OIDC_CLIENT_SECRET": "federation-test-secret",
    }
    config.update(overrides)
    return config


def add_host_routes(app: Flask) -> None:
    @app.get("/host/whoami")
    @with_provider_auth("tenants:read")
    def whoami() -> Any:
        return jsonify(subject=current_principal.subject_id, auth_method=current_principal.auth_method)

    @app.post(HOST_ACTION)
    @with_provider_auth("tenants:write")
    def tenant_action() -> Any:
        return jsonify(subject=current_principal.subject_id, auth_method=current_principal.auth_method)


def put_login(
    client: FlaskClient,
    audience: Audience,
    subject_id: str,
    entitlements: tuple[str, ...],
    expires_in: float = 600,
) -> None:
    login = SessionLogin(
        audience=audience,
        subject_id=subject_id,
        entitlements=entitlements,
        credential_id="oidc-login-test",
        expires_at=time.time() + expires_in,
        id_token=None,
    )
    with client.session_transaction() as session:
        session[SESSION_KEY] = login.to_session()


def has_login(client: FlaskClient) -> bool:
    with client.session_transaction() as session:
        return SESSION_KEY in session


@pytest.fixture
def login_app(make_app: Callable[..., Flask]) -> Any:
    app = make_app(**login_config())
    add_host_routes(app)
    with app.app_context():
        yield app


@pytest.fixture
def login_world(login_app: Flask) -> World:
    return World()


def provider_login(client: FlaskClient, world: World, *entitlements: str) -> None:
    put_login(client, Audience.PROVIDER, world.provider_a.public_id, entitlements or ("tenants:read", "tenants:write"))


def test_session_login_reads_tenants(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.get(TENANTS)
    assert response.status_code == 200
    assert [item["id"] for item in response.json["data"]["items"]] == [login_world.tenant_a.public_id]

    whoami = client.get("/host/whoami")
    assert whoami.json == {"subject": login_world.provider_a.public_id, "auth_method": "oidc_session"}


def test_developer_session_in_diagnostics(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    put_login(client, Audience.DEVELOPER, login_world.developer.public_id, ("diagnostics:read",))

    data = client.get(DIAGNOSTICS).json["data"]
    assert data["auth_method"] == "oidc_session"
    assert data["credential"]["id"] == "oidc-login-test"
    assert data["recent_requests"]["by_auth_method"]["oidc_session"] == 1


def test_session_of_other_audience_rejected(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.get(DIAGNOSTICS)
    assert response.status_code == 401
    assert "logged in as a provider" in response.json["error"]["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="federation"'


def test_expired_session_rejected_and_cleared(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    put_login(client, Audience.PROVIDER, login_world.provider_a.public_id, ("tenants:read",), expires_in=-1)

    response = client.get(TENANTS)
    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]
    assert not has_login(client)


def test_session_of_deleted_provider_rejected(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider = admin.create_provider("Short-lived")
    put_login(client, Audience.PROVIDER, provider.public_id, ("tenants:read",))
    session = get_state().session
    session.delete(session.get(Provider, provider.id))
    session.commit()

    response = client.get(TENANTS)
    assert response.status_code == 401
    assert "no longer exists" in response.json["error"]["message"]
    assert not has_login(client)


def test_session_without_entitlement_forbidden(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world, "audit:read")

    response = client.get(TENANTS)
    assert response.status_code == 403
    assert "tenants:read" in response.json["error"]["message"]


def test_session_entitlements_filtered_by_catalogue(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world, "diagnostics:read")

    assert client.get(TENANTS).status_code == 403


def test_bearer_header_wins_over_session(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.get("/host/whoami", headers=bearer(login_world.key_b))
    assert response.json == {"subject": login_world.provider_b.public_id, "auth_method": "api_key"}


def test_malformed_session_data_ignored(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = {"audience": "provider"}

    assert client.get(TENANTS).status_code == 401
    assert not has_login(client)


# --- CSRF ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "cross-site", "Origin": SAME_ORIGIN},
    ],
    ids=["no header", "foreign origin", "null origin", "lookalike origin", "cross-site", "same-site", "none", "mixed"],
)
def test_session_post_from_other_origin_rejected(login_app: Flask, login_world: World, headers: dict[str, str]) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.post(HOST_ACTION, headers=headers)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "csrf_rejected"


@pytest.mark.parametrize(
    "headers", [{"Origin": SAME_ORIGIN}, {"Sec-Fetch-Site": "same-origin"}], ids=["origin", "sec-fetch-site"]
)
def test_session_post_from_same_origin_accepted(login_app: Flask, login_world: World, headers: dict[str, str]) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.post(HOST_ACTION, headers=headers)
    assert response.status_code == 200
    assert response.json["auth_method"] == "oidc_session"


def test_bearer_post_needs_no_origin(login_app: Flask, login_world: World) -> None:
    response = login_app.test_client().post(HOST_ACTION, headers=bearer(login_world.key_a))

    assert response.status_code == 200
    assert response.json["auth_method"] == "api_key"


def test_session_get_needs_no_origin(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    assert client.get(TENANTS, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


# --- modes in which the session does not count -----------------------------------------


def test_legacy_only_ignores_session(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    with app.app_context():
        world = World()
        client = app.test_client()
        provider_login(client, world)

        response = client.get(TENANTS)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


def test_bearer_only_oidc_ignores_session(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        **login_config(
            FEDERATION_OIDC_LOGIN_ENABLED=False, FEDERATION_OIDC_CLIENT_ID=None, FEDERATION_OIDC_CLIENT_SECRET=None
        )
    )
    with app.app_context():
        world = World()
        client = app.test_client()
        provider_login(client, world)

        assert client.get(TENANTS).status_code == 401


# --- logout ------------------------------------------------------------------------


def test_logout_clears_login(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.post("/federation/oidc/logout", headers={"Origin": SAME_ORIGIN})
    assert response.status_code == 200
    assert response.json["data"] == {"logged_out": True, "end_session_url": None, "post_logout_redirect_uri": None}
    assert not has_login(client)
    assert client.get(TENANTS).status_code == 401


def test_logout_redirects_browser_to_next(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.post(
        "/federation/oidc/logout?next=//evil.example", headers={"Origin": SAME_ORIGIN, "Accept": "text/html"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_cross_site_logout_rejected(login_app: Flask, login_world: World) -> None:
    client = login_app.test_client()
    provider_login(client, login_world)

    response = client.post("/federation/oidc/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json["error"]["code"] == "csrf_rejected"
    assert has_login(client)
