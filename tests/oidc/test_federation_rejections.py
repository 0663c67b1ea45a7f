"""Forged and unsuitable access tokens at the HTTP level: every one gets the same safe 401.

The validator's own tests cover each check in depth. This table shows that the
federation routes turn each rejection into 401 ``unauthorized`` with an
``invalid_token`` challenge, and never fetch a key URL that a token names.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from joserfc.jwk import RSAKey

from ..conftest import World, bearer
from .apps import oidc_config
from .conftest import LocalHTTPServer, TokenMinter, b64url, sign_compact
from .idp import DEVELOPER_AUDIENCE, PROVIDER_AUDIENCE

TENANTS = "/federation/provider/v1/tenants"
ATTACKER_KEYS = "/attacker-keys"


@pytest.fixture
def issuer_server(jwks_server: LocalHTTPServer) -> LocalHTTPServer:
    """The local HTTP server as an issuer: its discovery document, and the test keys at ``/jwks``."""
    origin = jwks_server.origin
    jwks_server.serve_json(
        "/.well-known/openid-configuration",
        {
            "issuer": origin,
            "jwks_uri": f"{origin}/jwks",
            "authorization_endpoint": f"{origin}/auth",
            "token_endpoint": f"{origin}/token",
        },
    )
    return jwks_server


@pytest.fixture
def token_app(make_app: Callable[..., Flask], issuer_server: LocalHTTPServer) -> Iterator[Flask]:
    app = make_app(**oidc_config(issuer_server.origin))
    with app.app_context():
        yield app


@pytest.fixture
def token_world(token_app: Flask) -> World:
    return World()


class Forge:
    """Tokens for the provider of ``world``, valid unless a case changes them."""

    def __init__(self, minter: TokenMinter, world: World, attacker_url: str) -> None:
        self.minter = minter
        self.now = int(time.time())
        self.provider_id = world.provider_a.public_id
        self.attacker_url = attacker_url

    def claims(self, **overrides: Any) -> dict[str, Any]:
        defaults: dict[str, Any] = {"iat": self.now, "exp": self.now + 600, "provider_id": self.provider_id}
        return self.minter.claims(**{**defaults, **overrides})

    def rsa(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        key = self.minter.rsa_key
        return sign_compact(self.minter.header(key, "RS256", header), self.claims(**claims), key, "RS256")

    def unsigned(self, alg: str) -> str:
        header = b64url(json.dumps({"alg": alg, "typ": "at+jwt", "kid": self.minter.rsa_key.kid}).encode())
        payload = b64url(json.dumps(self.claims()).encode())
        return f"{header}.{payload}.{b64url(b'ignored')}"

    def hmac_with_public_key(self) -> str:
        # Key confusion: the published RSA public key used as an HMAC secret.
        public_pem = self.minter.rsa_key.as_pem(private=False)
        header = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": self.minter.rsa_key.kid}).encode())
        payload = b64url(json.dumps(self.claims()).encode())
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(signature)}"

    def signed_by_attacker(self, header: dict[str, Any]) -> str:
        attacker_key = RSAKey.generate_key(2048, parameters={"kid": self.minter.rsa_key.kid}, private=True)
        return sign_compact(self.minter.header(attacker_key, "RS256", header), self.claims(), attacker_key, "RS256")


CASES: dict[str, tuple[Callable[[Forge], str], str]] = {
    "alg none": (lambda forge: forge.unsigned("none"), "signing algorithm is not allowed"),
    "hs256 key confusion": (lambda forge: forge.hmac_with_public_key(), "signing algorithm is not allowed"),
    "jku injection": (lambda forge: forge.rsa(header={"jku": forge.attacker_url}), "names its own key"),
    "x5u injection": (lambda forge: forge.rsa(header={"x5u": forge.attacker_url}), "names its own key"),
    "jku with attacker signature": (
        lambda forge: forge.signed_by_attacker({"jku": forge.attacker_url}),
        "names its own key",
    ),
    "attacker signature": (lambda forge: forge.signed_by_attacker({}), "signature is invalid"),
    "expired": (lambda forge: forge.rsa(exp=forge.now - 3600, iat=forge.now - 4200), "expired"),
    "wrong issuer": (lambda forge: forge.rsa(iss="https://evil.example"), "not issued by the trusted issuer"),
    "developer audience": (lambda forge: forge.rsa(aud=DEVELOPER_AUDIENCE), "audience mismatch"),
    "client audience": (lambda forge: forge.rsa(aud="federation-test"), "audience mismatch"),
    "id token": (
        lambda forge: forge.rsa(header={"typ": "JWT"}, aud=PROVIDER_AUDIENCE, nonce="n-0S6_WzA2Mj"),
        "ID token, not an access token",
    ),
    "id token without typ": (lambda forge: forge.rsa(header={"typ": None}, nonce="n-1"), "not an access token"),
    "unknown crit": (lambda forge: forge.rsa(header={"crit": ["x-unknown"], "x-unknown": True}), "critical extensions"),
    "unknown kid": (lambda forge: forge.rsa(header={"kid": "no-such-key"}), "does not publish"),
    "oversized": (lambda forge: forge.rsa(padding="x" * 9000), "longer than 8192 bytes"),
    "not a jwt": (lambda forge: "opaque-access-token-value", "three dot-separated segments"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rejected_token_gets_safe_401(
    token_app: Flask, token_world: World, minter: TokenMinter, issuer_server: LocalHTTPServer, case: str
) -> None:
    issuer_server.serve_keys([minter.rsa_key], path=ATTACKER_KEYS)
    forge = Forge(minter, token_world, issuer_server.url(ATTACKER_KEYS))
    make_token, message_part = CASES[case]
    token = make_token(forge)

    response = token_app.test_client().get(TENANTS, headers=bearer(token))

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert message_part in response.json["error"]["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="federation", error="invalid_token"'
    assert issuer_server.hit_count(ATTACKER_KEYS) == 0
    for segment in token.split("."):
        assert segment not in response.get_data(as_text=True)


def test_forged_token_baseline_accepted(
    token_app: Flask, token_world: World, minter: TokenMinter, issuer_server: LocalHTTPServer
) -> None:
    # The table's tokens differ from this one in one respect each, so each rejection has one cause.
    forge = Forge(minter, token_world, issuer_server.url(ATTACKER_KEYS))

    assert token_app.test_client().get(TENANTS, headers=bearer(forge.rsa())).status_code == 200


def test_jwks_down_before_first_fetch_is_503(
    token_app: Flask, token_world: World, minter: TokenMinter, issuer_server: LocalHTTPServer
) -> None:
    issuer_server.serve_json("/jwks", {"error": "down"}, status=503)
    forge = Forge(minter, token_world, issuer_server.url(ATTACKER_KEYS))

    response = token_app.test_client().get(TENANTS, headers=bearer(forge.rsa()))

    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "30"


def test_discovery_fetched_once(
    token_app: Flask, token_world: World, minter: TokenMinter, issuer_server: LocalHTTPServer
) -> None:
    forge = Forge(minter, token_world, issuer_server.url(ATTACKER_KEYS))
    client = token_app.test_client()
    for _ in range(3):
        assert client.get(TENANTS, headers=bearer(forge.rsa())).status_code == 200

    assert issuer_server.hit_count("/.well-known/openid-configuration") == 1
    assert issuer_server.hit_count("/jwks") == 1

