"""The validator against real tokens from the local OpenID provider (oidc-provider on Node.js)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from flask_federation.oidc.discovery import fetch_provider_metadata
from flask_federation.oidc.errors import InvalidTokenError
from flask_federation.oidc.jwks import JWKSCache
from flask_federation.oidc.tokens import AccessTokenValidator

from .conftest import ManualClock
from .idp import CLIENT_ID, DEVELOPER_AUDIENCE, PROVIDER_AUDIENCE, IdPLoginError, LocalIdP

PROVIDER_CALLBACK = "http://127.0.0.1:5000/federation/oidc/provider/callback"
DEVELOPER_CALLBACK = "http://127.0.0.1:5000/federation/oidc/developer/callback"
PROVIDER_LOGGED_OUT = "http://127.0.0.1:5000/federation/oidc/provider/logged-out"


def make_validator(
    idp: LocalIdP, audience: str, session: requests.Session, clock: ManualClock | None = None
) -> AccessTokenValidator:
    metadata = fetch_provider_metadata(idp.issuer, timeout=5, session=session)
    cache = JWKSCache(metadata.jwks_uri, session=session, clock=clock or ManualClock(0.0))
    return AccessTokenValidator(metadata.issuer, audience, jwks=cache)


def decode_segment(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(idp: LocalIdP, *, redirect_uri: str, resource: str, scope: str, **extra: str) -> str:
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "resource": resource,
        "scope": scope,
        "state": "state-1",
        **extra,
    }
    return f"{idp.issuer}/auth?{urlencode(params)}"


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


def login_and_redeem(
    idp: LocalIdP, browser: requests.Session, username: str, *, redirect_uri: str, resource: str, scope: str
) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    url = authorize_url(
        idp,
        redirect_uri=redirect_uri,
        resource=resource,
        scope=scope,
        nonce="nonce-1",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    callback = idp.login_via_idp(browser, url, username)
    query = query_of(callback)
    assert callback.startswith(redirect_uri + "?")
    assert query["state"] == "state-1"
    return idp.exchange_code(query["code"], redirect_uri=redirect_uri, code_verifier=verifier)


# --- discovery and client credentials ---------------------------------------------


def test_discovery_of_local_idp(idp: LocalIdP, browser: requests.Session) -> None:
    metadata = fetch_provider_metadata(idp.issuer, timeout=5, session=browser)

    assert metadata.issuer == idp.issuer
    assert metadata.jwks_uri == f"{idp.issuer}/jwks"
    assert metadata.end_session_endpoint == f"{idp.issuer}/session/end"


def test_provider_client_credentials_token_validates(idp: LocalIdP, browser: requests.Session) -> None:
    token = idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read audit:read", provider_id="prv_alice")
    claims = make_validator(idp, PROVIDER_AUDIENCE, browser).validate(token)

    assert decode_segment(token, 0)["typ"] == "at+jwt"
    assert decode_segment(token, 0)["alg"] == "RS256"
    assert claims["provider_id"] == "prv_alice"
    assert claims["scope"] == "tenants:read audit:read"
    assert claims["client_id"] == CLIENT_ID
    assert "developer_id" not in claims


def test_developer_client_credentials_token_validates(idp: LocalIdP, browser: requests.Session) -> None:
    token = idp.client_credentials_token(DEVELOPER_AUDIENCE, "diagnostics:read", developer_id="dev_dave")
    claims = make_validator(idp, DEVELOPER_AUDIENCE, browser).validate(token)

    assert decode_segment(token, 0)["alg"] == "ES256"
    assert claims["developer_id"] == "dev_dave"
    assert claims["scope"] == "diagnostics:read"


def test_scopes_outside_resource_are_dropped(idp: LocalIdP, browser: requests.Session) -> None:
    token = idp.client_credentials_token(DEVELOPER_AUDIENCE, "diagnostics:read tenants:write")

    assert make_validator(idp, DEVELOPER_AUDIENCE, browser).validate(token)["scope"] == "diagnostics:read"


def test_provider_token_rejected_for_developer_audience(idp: LocalIdP, browser: requests.Session) -> None:
    token = idp.client_credentials_token(PROVIDER_AUDIENCE, "audit:read", provider_id="prv_alice")

    with pytest.raises(InvalidTokenError, match="audience mismatch"):
        make_validator(idp, DEVELOPER_AUDIENCE, browser).validate(token)


def test_developer_token_rejected_for_provider_audience(idp: LocalIdP, browser: requests.Session) -> None:
    token = idp.client_credentials_token(DEVELOPER_AUDIENCE, "audit:read", developer_id="dev_dave")

    with pytest.raises(InvalidTokenError, match="audience mismatch"):
        make_validator(idp, PROVIDER_AUDIENCE, browser).validate(token)


# --- key rotation and outages ---------------------------------------------------


def test_key_rotation_without_new_validator(private_idp: LocalIdP, browser: requests.Session) -> None:
    clock = ManualClock(0.0)
    validator = make_validator(private_idp, PROVIDER_AUDIENCE, browser, clock)
    old_token = private_idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", provider_id="prv_alice")
    old_kid = decode_segment(old_token, 0)["kid"]
    assert validator.validate(old_token)["provider_id"] == "prv_alice"

    private_idp.restart(new_keys=True)
    new_token = private_idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", provider_id="prv_bob")
    assert decode_segment(new_token, 0)["kid"] != old_kid

    clock.advance(validator.jwks.refetch_cooldown_seconds)
    assert validator.validate(new_token)["provider_id"] == "prv_bob"
    assert validator.jwks.fetch_count == 2

    with pytest.raises(InvalidTokenError, match="key that the issuer does not publish"):
        validator.validate(old_token)
    assert old_kid not in validator.jwks.kids()


def test_restart_with_same_keys_keeps_tokens_valid(private_idp: LocalIdP, browser: requests.Session) -> None:
    validator = make_validator(private_idp, PROVIDER_AUDIENCE, browser)
    token = private_idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", provider_id="prv_alice")

    private_idp.restart(new_keys=False)

    assert validator.validate(token)["provider_id"] == "prv_alice"


def test_idp_down_cached_keys_keep_validating(
    private_idp: LocalIdP, browser: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_federation")
    clock = ManualClock(0.0)
    provider_validator = make_validator(private_idp, PROVIDER_AUDIENCE, browser, clock)
    provider_token = private_idp.client_credentials_token(PROVIDER_AUDIENCE, "tenants:read", provider_id="prv_alice")
    assert provider_validator.validate(provider_token)["provider_id"] == "prv_alice"

    private_idp.stop()
    clock.advance(provider_validator.jwks.ttl_seconds)

    for _ in range(5):
        assert provider_validator.validate(provider_token)["provider_id"] == "prv_alice"
    assert provider_validator.jwks.fetch_failure_count == 1
    assert len([record for record in caplog.records if "cached keys" in record.getMessage()]) == 1


# --- authorization code flow ----------------------------------------------------


def test_login_flow_token_carries_provider_id(idp: LocalIdP, browser: requests.Session) -> None:
    tokens = login_and_redeem(
        idp,
        browser,
        "alice",
        redirect_uri=PROVIDER_CALLBACK,
        resource=PROVIDER_AUDIENCE,
        scope="openid tenants:read tenants:write",
    )
    claims = make_validator(idp, PROVIDER_AUDIENCE, browser).validate(tokens["access_token"])

    assert claims["sub"] == "alice"
    assert claims["provider_id"] == "prv_alice"
    assert claims["scope"] == "tenants:read tenants:write"
    assert decode_segment(tokens["id_token"], 1)["provider_id"] == "prv_alice"


def test_login_flow_token_carries_developer_id(idp: LocalIdP, browser: requests.Session) -> None:
    tokens = login_and_redeem(
        idp,
        browser,
        "dave",
        redirect_uri=DEVELOPER_CALLBACK,
        resource=DEVELOPER_AUDIENCE,
        scope="openid diagnostics:read",
    )
    claims = make_validator(idp, DEVELOPER_AUDIENCE, browser).validate(tokens["access_token"])

    assert claims["sub"] == "dave"
    assert claims["developer_id"] == "dev_dave"
    assert "provider_id" not in claims


def test_id_token_rejected_as_access_token(idp: LocalIdP, browser: requests.Session) -> None:
    tokens = login_and_redeem(
        idp,
        browser,
        "bob",
        redirect_uri=PROVIDER_CALLBACK,
        resource=PROVIDER_AUDIENCE,
        scope="openid tenants:read",
    )
    # Even a validator misconfigured with the client id as its audience must reject the ID token.
    validator = make_validator(idp, CLIENT_ID, browser)

    with pytest.raises(InvalidTokenError, match="not an access token"):
        validator.validate(tokens["id_token"])


def test_login_without_pkce_rejected(idp: LocalIdP, browser: requests.Session) -> None:
    url = authorize_url(idp, redirect_uri=PROVIDER_CALLBACK, resource=PROVIDER_AUDIENCE, scope="openid tenants:read")
    query = query_of(idp.login_via_idp(browser, url, "alice"))

    assert query["error"] == "invalid_request"
    assert "PKCE" in query["error_description"]


def test_login_with_unknown_account_raises(idp: LocalIdP, browser: requests.Session) -> None:
    _, challenge = pkce_pair()
    url = authorize_url(
        idp,
        redirect_uri=PROVIDER_CALLBACK,
        resource=PROVIDER_AUDIENCE,
        scope="openid",
        code_challenge=challenge,
        code_challenge_method="S256",
    )

    with pytest.raises(IdPLoginError, match="unknown test account"):
        idp.login_via_idp(browser, url, "mallory")


def test_rp_initiated_logout_redirects_back(idp: LocalIdP, browser: requests.Session) -> None:
    tokens = login_and_redeem(
        idp,
        browser,
        "alice",
        redirect_uri=PROVIDER_CALLBACK,
        resource=PROVIDER_AUDIENCE,
        scope="openid tenants:read",
    )
    end_session_url = f"{idp.issuer}/session/end?" + urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": PROVIDER_LOGGED_OUT, "state": "bye"}
    )

    assert idp.logout_via_idp(browser, end_session_url) == f"{PROVIDER_LOGGED_OUT}?state=bye"
