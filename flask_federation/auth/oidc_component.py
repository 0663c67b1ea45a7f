"""The OIDC component of one app: provider discovery, token validation and the login client.

Built by ``init_app`` when ``FEDERATION_OIDC_ENABLED`` is true and kept in
``get_state().components["oidc"]``. Nothing talks to the OpenID provider at
start-up: the discovery document is fetched on first use, under a lock, so an
app starts while the provider is down.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from flask import Flask

from ..config import FederationSettings
from ..entitlements import Audience
from ..errors import ServiceUnavailable
from ..oidc.discovery import ProviderMetadata, fetch_provider_metadata
from ..oidc.errors import IdentityProviderUnavailable, InvalidTokenError, OIDCConfigurationError, OIDCError
from ..oidc.jwks import JWKSCache
from ..oidc.tokens import AccessTokenValidator
from .authenticate import invalid_token
from .oidc_claims import (
    claimed_subject_id,
    entitlements_for_scopes,
    granted_scopes,
    load_owner,
    token_credential_id,
)
from .oidc_session import authenticate_session
from .principal import AUTH_METHOD_OIDC_BEARER, Principal

if TYPE_CHECKING:
    from .oidc_client import FederationOAuth2App

logger = logging.getLogger("flask_federation.oidc")


@dataclasses.dataclass(frozen=True)
class _Discovered:
    """The provider metadata and the objects built from it on first use."""

    metadata: ProviderMetadata
    jwks: JWKSCache
    validators: dict[Audience, AccessTokenValidator]
    login_clients: dict[Audience, FederationOAuth2App]


class OIDCComponent:
    """Validates OIDC bearer tokens for both audiences and keeps the Authlib login clients.

    The component is shared by all threads of a worker. One JWKS cache serves
    both audiences, because they share the issuer.
    """

    def __init__(self, app: Flask, settings: FederationSettings) -> None:
        self.settings = settings
        self._app = app
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._discovered: _Discovered | None = None
        self._last_failure: OIDCError | None = None
        self._last_failure_at = 0.0
        self._in_outage = False

    # --- configuration -------------------------------------------------------------

    @property
    def login_enabled(self) -> bool:
        return bool(self.settings.oidc_login_enabled)

    def audience_uri(self, audience: Audience) -> str:
        """Return the configured ``aud`` value (the resource indicator) of ``audience``."""
        if audience is Audience.PROVIDER:
            return str(self.settings.oidc_provider_audience)

        return str(self.settings.oidc_developer_audience)

    def subject_claim(self, audience: Audience) -> str:
        if audience is Audience.PROVIDER:
            return str(self.settings.oidc_provider_claim)

        return str(self.settings.oidc_developer_claim)

    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(float(self.settings.oidc_jwks_refetch_cooldown_seconds)))

    # --- bearer tokens ----------------------------------------------------------------

    def authenticate_bearer(self, token: str, audience: Audience) -> Principal:
        """Return the principal that the access ``token`` proves for ``audience``, or raise 401 or 503.

        401 ``unauthorized`` when the token is invalid, is for the other audience,
        carries no subject claim, or names no known provider or developer. 503
        ``service_unavailable`` when the provider cannot be reached and no signing
        key was fetched before.
        """
        with self.provider_errors():
            validator = self._discover().validators[audience]
            try:
                claims = validator.validate(token)
            except InvalidTokenError as error:
                raise invalid_token(error.reason) from None

        claim_name = self.subject_claim(audience)
        subject_id = claimed_subject_id(claims, claim_name)
        if subject_id is None:
            raise invalid_token(
                f"The token has no valid {claim_name} claim, so it names no {audience.value}. "
                f"Request a token for a client or account that is linked to a {audience.value}."
            )

        owner = load_owner(audience, subject_id)
        if owner is None:
            raise invalid_token(
                f"The token's {claim_name} claim names no known {audience.value}. "
                "Ask the platform to link your account or client to your federation id."
            )

        scopes = granted_scopes(claims)
        return Principal(
            audience=audience,
            subject_id=owner.public_id,
            subject_pk=owner.id,
            display_name=owner.name,
            credential_id=token_credential_id(claims, token),
            entitlements=entitlements_for_scopes(scopes, audience, self.settings.oidc_scope_map),
            auth_method=AUTH_METHOD_OIDC_BEARER,
        )

    def validator(self, audience: Audience) -> AccessTokenValidator:
        """Return the access-token validator of ``audience``, discovering the provider first if needed (may raise 503)."""
        with self.provider_errors():
            return self._discover().validators[audience]

    # --- browser login ------------------------------------------------------------------

    def authenticate_session(self, audience: Audience) -> Principal | None:
        """Return the principal of the browser login in the session, or None; see :func:`oidc_session.authenticate_session`.

        Always None while ``FEDERATION_OIDC_LOGIN_ENABLED`` is false, so turning
        login off also ends every existing browser login.
        """
        if not self.login_enabled:
            return None

        return authenticate_session(audience, self.login_path(audience))

    def login_path(self, audience: Audience) -> str:
        return f"{self.settings.url_prefix}/oidc/{audience.value}/login"

    def login_client(self, audience: Audience) -> FederationOAuth2App:
        """Return the Authlib client for logins of ``audience``, discovering the provider first if needed (may raise 503)."""
        with self.provider_errors():
            discovered = self._discover()

        client = discovered.login_clients.get(audience)
        if client is None:
            raise RuntimeError("FEDERATION_OIDC_LOGIN_ENABLED is false, so there is no login client.")

        return client

    def metadata(self) -> ProviderMetadata:
        """Return the provider's metadata, discovering it first if needed (may raise 503)."""
        with self.provider_errors():
            return self._discover().metadata

    # --- discovery and outages ---------------------------------------------------------------

    @contextmanager
    def provider_errors(self) -> Iterator[None]:
        """Turn provider outages and bad provider metadata into 503 ``service_unavailable`` with ``Retry-After``.

        Logs one warning per outage, and one info line when the provider responds again.
        """
        try:
            yield
        except (IdentityProviderUnavailable, OIDCConfigurationError) as error:
            if not self._in_outage:
                self._in_outage = True
                level = logging.ERROR if isinstance(error, OIDCConfigurationError) else logging.WARNING
                logger.log(level, "The OpenID provider %s is unusable, so OIDC requests get 503: %s", self._issuer, error)

            raise ServiceUnavailable(
                "The identity provider is unreachable or publishes invalid metadata, so OIDC authentication cannot "
                "proceed. Retry after the time in Retry-After.",
                headers={"Retry-After": str(self.retry_after_seconds())},
            ) from None

        if self._in_outage:
            self._in_outage = False
            logger.info("The OpenID provider %s responds again", self._issuer)

    @property
    def _issuer(self) -> str:
        return str(self.settings.oidc_issuer)

    def _discover(self) -> _Discovered:
        # NOTE: a successful discovery is kept for the life of the process. The signing
        # keys rotate through the JWKS cache, but a provider that moves its jwks_uri or
        # endpoints needs a restart of the app.
        discovered = self._discovered
        if discovered is not None:
            return discovered

        with self._lock:
            if self._discovered is not None:
                return self._discovered

            # Within the cooldown after a failure the error repeats without a new
            # request, so a down provider does not get one discovery per API call.
            cooldown = float(self.settings.oidc_jwks_refetch_cooldown_seconds)
            if self._last_failure is not None and time.monotonic() - self._last_failure_at < cooldown:
                raise type(self._last_failure)(str(self._last_failure))

            try:
                self._discovered = self._build(self._fetch_metadata())
            except OIDCError as error:
                self._last_failure, self._last_failure_at = error, time.monotonic()
                raise

            self._last_failure = None
            return self._discovered

    def _fetch_metadata(self) -> ProviderMetadata:
        metadata = fetch_provider_metadata(
            self._issuer, timeout=float(self.settings.oidc_http_timeout_seconds), session=self._http
        )
        if self.settings.oidc_require_https:
            endpoints = {
                "jwks_uri": metadata.jwks_uri,
                "authorization_endpoint": metadata.authorization_endpoint,
                "token_endpoint": metadata.token_endpoint,
                "end_session_endpoint": metadata.end_session_endpoint,
            }
            for name, url in endpoints.items():
                if url is not None and urlsplit(url).scheme != "https":
                    raise OIDCConfigurationError(
                        f"The provider publishes {name} {url!r}, which is not https. "
                        "Fix the provider, or set FEDERATION_OIDC_REQUIRE_HTTPS=false for local testing only."
                    )

        return metadata

    def _build(self, metadata: ProviderMetadata) -> _Discovered:
        settings = self.settings
        jwks = JWKSCache(
            metadata.jwks_uri,
            ttl_seconds=float(settings.oidc_jwks_ttl_seconds),
            refetch_cooldown_seconds=float(settings.oidc_jwks_refetch_cooldown_seconds),
            timeout_seconds=float(settings.oidc_http_timeout_seconds),
            session=self._http,
        )
        validators = {
            audience: AccessTokenValidator(
                metadata.issuer,
                self.audience_uri(audience),
                jwks=jwks,
                algorithms=settings.oidc_algorithms,
                leeway_seconds=float(settings.oidc_leeway_seconds),
                max_token_bytes=int(settings.oidc_max_token_bytes),
            )
            for audience in Audience
        }
        login_clients: dict[Audience, FederationOAuth2App] = {}
        if self.login_enabled:
            from .oidc_client import register_login_clients

            login_clients = register_login_clients(self._app, settings, metadata, jwks)

        return _Discovered(metadata, jwks, validators, login_clients)


def build_oidc_component(app: Flask, settings: FederationSettings) -> OIDCComponent | None:
    """Return the OIDC component for ``app``, or None when ``FEDERATION_OIDC_ENABLED`` is false."""
    if not settings.oidc_enabled:
        return None

    return OIDCComponent(app, settings)

