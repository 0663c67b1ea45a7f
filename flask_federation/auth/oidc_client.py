"""Authlib's Flask OAuth client, set up for the federation's browser login.

One client per audience, so that the login state of one audience is unknown to
the callback of the other. Settings come only from the ``FEDERATION_OIDC_*``
keys, never from Authlib's own ``{NAME}_CLIENT_ID`` config lookup, and the
provider metadata comes from the component's own discovery, which has a
timeout and follows no redirects.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from flask import Flask

from ..config import FederationSettings
from ..entitlements import Audience
from ..oidc.discovery import ProviderMetadata
from ..oidc.jwks import JWKSCache
from .oidc_claims import login_scope


class FederationOAuth2App(FlaskOAuth2App):  # type: ignore[misc]
    """Authlib's Flask OAuth 2 client, verifying ID tokens with the component's JWKS cache.

    Authlib would otherwise fetch the JWKS itself and keep it for the life of
    the process, so a key the provider withdrew would keep verifying ID tokens.
    """

    jwks: JWKSCache | None = None

    def fetch_jwk_set(self, force: bool = False) -> dict[str, Any]:
        assert self.jwks is not None, "register_login_clients sets the JWKS cache"
        return self.jwks.public_jwks(refetch=force)


class FederationOAuth(OAuth):  # type: ignore[misc]
    """Authlib's client registry, bound to one app without taking over its ``authlib`` extension slot."""

    oauth2_client_cls = FederationOAuth2App

    def __init__(self, app: Flask) -> None:
        super().__init__()
        # Set directly instead of through init_app, which would replace a registry
        # that the host app keeps in app.extensions for its own OAuth clients.
        self.app = app

    def load_config(self, name: str, params: Any) -> dict[str, Any]:
        return {}


def client_name(audience: Audience) -> str:
    """Return the Authlib client name of ``audience``; it prefixes the login state keys in the session."""
    return f"flask_federation_{audience.value}"


def register_login_clients(
    app: Flask, settings: FederationSettings, metadata: ProviderMetadata, jwks: JWKSCache
) -> dict[Audience, FederationOAuth2App]:
    """Register one login client per audience with the discovered ``metadata`` and return them."""
    oauth = FederationOAuth(app)
    clients: dict[Audience, FederationOAuth2App] = {}
    for audience in Audience:
        client = oauth.register(
            client_name(audience),
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            authorize_url=metadata.authorization_endpoint,
            access_token_url=metadata.token_endpoint,
            client_kwargs={
                "code_challenge_method": "S256",
                "default_timeout": float(settings.oidc_http_timeout_seconds),
                "scope": login_scope(audience, settings.oidc_scope_map),
            },
            # Server metadata that Authlib reads: the issuer for the ID token's iss
            # check, the end-session endpoint for logout, and the algorithms it
            # accepts on ID tokens, which are the configured asymmetric ones only.
            issuer=metadata.issuer,
            jwks_uri=metadata.jwks_uri,
            end_session_endpoint=metadata.end_session_endpoint,
            id_token_signing_alg_values_supported=list(settings.oidc_algorithms),
        )
        client.jwks = jwks
        clients[audience] = client

    return clients
