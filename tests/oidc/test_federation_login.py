"""The browser login flow, end to end: a real HTTP server, the local OpenID provider and a cookie jar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
from flask import Flask, jsonify

from flask_federation import admin, current_principal, with_provider_auth

from .apps import ServedApp, create_developer_with_id, create_provider_with_id, login_config
from .conftest import start_local_idp
from .idp import CLIENT_ID, LocalIdP

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp]:
    server = ServedApp()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def login_idp(served: ServedApp) -> Iterator[LocalIdP]:
    instance = start_local_idp(
        redirect_uris=[
            f"{served.base_url}/federation/oidc/provider/callback",
            f"{served.base_url}/federation/oidc/developer/callback",
        ],
        post_logout_redirect_uris=[f"{served.base_url}/logged-out"],
    )
    yield instance
    instance.close()


@pytest.fixture
def site(make_app: Callable[..., Flask], served: ServedApp, login_idp: LocalIdP) -> Iterator[Site]:
    app = make_app(**login_config(login_idp.issuer, FEDERATION_OIDC_POST_LOGOUT_REDIRECT_URI=f"{served.base_url}/logged-out"))

    @app.get("/host/whoami")
    @with_provider_auth("tenants:read")
    def whoami() -> Any:
        return jsonify(subject=current_principal.subject_id, auth_method=current_principal.auth_method)

    @app.post("/host/tenant-action")
    @with_provider_auth("tenants:write")
    def tenant_action() -> Any:
        return jsonify(subject=current_principal.subject_id)

    with app.app_context():
        create_provider_with_id("prv_alice", "Alice Hosting")
        create_provider_with_id("prv_bob", "Bob Hosting")
        create_developer_with_id("dev_dave", "Dave Tools")
        tenant_id = admin.create_tenant("prv_alice", name="Alice one", slug="alice-one", region="eu-west-1").public_id
        admin.create_tenant("prv_bob", name="Bob one", slug="bob-one", region="eu-west-1")

    served.app = app
    yield Site(served.base_url, login_idp, tenant_id)
    served.app = None


class Site:
    """The served app from the browser side, with helpers that drive the login."""

    def __init__(self, base_url: str, idp: LocalIdP, alice_tenant_id: str) -> None:
        self.base_url = base_url
        self.idp = idp
        self.alice_tenant_id = alice_tenant_id

    def browser(self) -> requests.Session:
        session = requests.Session()
        # Only loopback servers take part, so proxy settings from the environment must not apply.
        session.trust_env = False
        return session

    def start_login(self, browser: requests.Session, audience: str, next_path: str | None = None) -> str:
        """Request the login route and return the provider's authorization URL it redirects to."""
        query = "" if next_path is None else "?" + urlencode({"next": next_path})
        response = browser.get(f"{self.base_url}/federation/oidc/{audience}/login{query}", allow_redirects=False)
        assert response.status_code == 302, response.text
        location: str = response.headers["Location"]
        assert location.startswith(self.idp.issuer + "/")
        return location

    def callback_url(
        self, browser: requests.Session, audience: str, username: str, *, next_path: str | None = None, **changes: str
    ) -> str:
        """Start a login, apply ``changes`` to the authorization URL's parameters, and sign in at the provider."""
        authorize_url = self.start_login(browser, audience, next_path)
        if changes:
            authorize_url = with_query(authorize_url, **changes)

        callback: str = self.idp.login_via_idp(browser, authorize_url, username)
        assert callback.startswith(f"{self.base_url}/federation/oidc/{audience}/callback?")
        return callback

    def log_in(self, browser: requests.Session, audience: str, username: str, next_path: str | None = None) -> requests.Response:
        callback = self.callback_url(browser, audience, username, next_path=next_path)
        return browser.get(callback, allow_redirects=False)

    def get(self, browser: requests.Session, path: str, **kwargs: Any) -> requests.Response:
        return browser.get(self.base_url + path, allow_redirects=False, **kwargs)

    def post(self, browser: requests.Session, path: str, **kwargs: Any) -> requests.Response:
        return browser.post(self.base_url + path, allow_redirects=False, **kwargs)


def with_query(url: str, **changes: str) -> str:
    """Return ``url`` with the query parameters in ``changes`` replaced; a value of ``""`` removes one."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    query.update(changes)
    query = {name: value for name, value in query.items() if value != ""}
    return urlunsplit(parts._replace(query=urlencode(query)))


def assert_login_failed(response: requests.Response, message_part: str) -> None:
    assert response.status_code == 400
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "oidc_login_failed"
    assert message_part in body["error"]["message"]


def assert_logged_out(site: Site, browser: requests.Session) -> None:
    response = site.get(browser, TENANTS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_provider_login_then_tenants(site: Site) -> None:
    browser = site.browser()
    callback = site.log_in(browser, "provider", "alice", next_path="/after-login?tab=tenants")

    assert callback.status_code == 303
    assert callback.headers["Location"] == "/after-login?tab=tenants"
    cookie = callback.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie

    tenants = site.get(browser, TENANTS)
    assert tenants.status_code == 200
    assert [item["id"] for item in tenants.json()["data"]["items"]] == [site.alice_tenant_id]

    whoami = site.get(browser, "/host/whoami")
    assert whoami.json() == {"subject": "prv_alice", "auth_method": "oidc_session"}


def test_developer_login_then_diagnostics(site: Site) -> None:
    browser = site.browser()
    assert site.log_in(browser, "developer", "dave").headers["Location"] == "/"

    diagnostics = site.get(browser, DIAGNOSTICS)
    assert diagnostics.status_code == 200
    data = diagnostics.json()["data"]
    assert data["principal"]["id"] == "dev_dave"
    assert data["auth_method"] == "oidc_session"
    assert data["entitlements"] == ["audit:read", "diagnostics:read"]
    assert data["credential"]["id"].startswith("oidc-login-")

    provider_route = site.get(browser, TENANTS)
    assert provider_route.status_code == 401
    assert "logged in as a developer" in provider_route.json()["error"]["message"]


def test_logout_ends_session_at_provider(site: Site) -> None:
    browser = site.browser()
    site.log_in(browser, "provider", "alice")

    response = site.post(browser, "/federation/oidc/logout", headers={"Origin": site.base_url, "Accept": "application/json"})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["logged_out"] is True
    assert data["post_logout_redirect_uri"] == f"{site.base_url}/logged-out"
    end_session = parse_qs(urlsplit(data["end_session_url"]).query)
    assert data["end_session_url"].startswith(f"{site.idp.issuer}/session/end?")
    assert end_session["post_logout_redirect_uri"] == [f"{site.base_url}/logged-out"]
    assert end_session["client_id"] == [CLIENT_ID]
    assert end_session["id_token_hint"][0].count(".") == 2
    assert_logged_out(site, browser)

    landing = site.idp.logout_via_idp(browser, data["end_session_url"])
    assert landing.startswith(f"{site.base_url}/logged-out?state=")


def test_logout_redirects_html_to_provider(site: Site) -> None:
    browser = site.browser()
    site.log_in(browser, "provider", "alice")

    response = site.post(browser, "/federation/oidc/logout", headers={"Origin": site.base_url, "Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"{site.idp.issuer}/session/end?")
    assert_logged_out(site, browser)


def test_cross_site_logout_keeps_session(site: Site) -> None:
    browser = site.browser()
    site.log_in(browser, "provider", "alice")

    response = site.post(browser, "/federation/oidc/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_rejected"
    assert site.get(browser, TENANTS).status_code == 200


def test_session_post_needs_same_origin(site: Site) -> None:
    browser = site.browser()
    site.log_in(browser, "provider", "alice")

    rejected = site.post(browser, "/host/tenant-action")
    assert rejected.status_code == 403
    assert rejected.json()["error"]["code"] == "csrf_rejected"

    accepted = site.post(browser, "/host/tenant-action", headers={"Origin": site.base_url})
    assert accepted.status_code == 200
    assert accepted.json() == {"subject": "prv_alice"}


def test_replayed_callback_rejected(site: Site) -> None:
    browser = site.browser()
    callback = site.callback_url(browser, "provider", "alice")
    assert browser.get(callback, allow_redirects=False).status_code == 303
    site.post(browser, "/federation/oidc/logout", headers={"Origin": site.base_url})

    assert_login_failed(browser.get(callback, allow_redirects=False), "already used")
    assert_logged_out(site, browser)


def test_callback_in_other_browser_rejected(site: Site) -> None:
    victim = site.browser()
    callback = site.callback_url(site.browser(), "provider", "alice")

    assert_login_failed(victim.get(callback, allow_redirects=False), "from another browser")
    assert_logged_out(site, victim)


def test_callback_of_other_audience_rejected(site: Site) -> None:
    browser = site.browser()
    callback = site.callback_url(browser, "provider", "alice")
    developer_callback = callback.replace("/oidc/provider/callback", "/oidc/developer/callback")

    assert_login_failed(browser.get(developer_callback, allow_redirects=False), "unknown")
    assert_logged_out(site, browser)


def test_callback_without_state_rejected(site: Site) -> None:
    browser = site.browser()
    callback = with_query(site.callback_url(browser, "provider", "alice"), state="")

    assert_login_failed(browser.get(callback, allow_redirects=False), "no state parameter")
    assert_logged_out(site, browser)


def test_nonce_mismatch_rejected(site: Site) -> None:
    # An attacker's authorization response carries an ID token for another nonce than this browser's login.
    browser = site.browser()
    callback = site.callback_url(browser, "provider", "alice", nonce="nonce-of-another-login")

    assert_login_failed(browser.get(callback, allow_redirects=False), "ID token is invalid")
    assert_logged_out(site, browser)


def test_provider_error_rejected(site: Site) -> None:
    browser = site.browser()
    callback = site.callback_url(browser, "provider", "alice", resource="urn:federation:unknown")

    assert "error=invalid_target" in callback
    assert_login_failed(browser.get(callback, allow_redirects=False), "'invalid_target'")
    assert_logged_out(site, browser)


@pytest.mark.parametrize("username", ["unmapped", "dave"])
def test_unlinked_account_rejected(site: Site, username: str) -> None:
    browser = site.browser()

    assert_login_failed(site.log_in(browser, "provider", username), "not linked to a known provider")
    assert_logged_out(site, browser)


@pytest.mark.parametrize(
    "next_path", ["//evil.example/x", "https://evil.example/x", "/\\evil.example", "/\t/evil.example"], ids=repr
)
def test_open_redirect_falls_back(site: Site, next_path: str) -> None:
    response = site.log_in(site.browser(), "provider", "alice", next_path=next_path)

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
