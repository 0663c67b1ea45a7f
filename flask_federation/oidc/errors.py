"""Exceptions raised by the OpenID Connect token validation modules."""

from __future__ import annotations


class OIDCError(Exception):
    """Base class of every error raised by ``flask_federation.oidc``."""


class OIDCConfigurationError(OIDCError, ValueError):
    """The OIDC settings or the identity provider's published metadata are invalid.

    Examples are an issuer mismatch in the discovery document, a malformed
    JWKS, or a forbidden algorithm in the validator's allow-list. Retrying
    does not help until an operator fixes the configuration.
    """


class IdentityProviderUnavailable(OIDCError):
    """The identity provider could not be reached or returned a server error (HTTP 5xx or 429).

    The condition is usually transient, so callers should respond with 503 and let
    the client retry.
    """


class InvalidTokenError(OIDCError):
    """The bearer token was rejected.

    ``reason`` is a short sentence that is safe to return to the client: it
    never contains the token or any value copied from it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
