"""Turn the request's credentials into a :class:`Principal`, or raise 401."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from typing import TYPE_CHECKING, cast

from flask import request
from sqlalchemy import bindparam, select, update

from ..context import request_state
from ..entitlements import Audience
from ..errors import Unauthorized
from ..models import Credential, Developer, Provider, utcnow
from ..state import get_state
from .api_keys import MalformedKey, hash_key, looks_like_api_key, parse_key
from .credential_cache import CredentialCache, get_credential_cache
from .principal import AUTH_METHOD_API_KEY, Principal
from .usage import record_authenticated_request

if TYPE_CHECKING:
    from .oidc_component import OIDCComponent

logger = logging.getLogger("flask_federation")

#: Query parameters that clients sometimes use for credentials; named in the 401 so callers know why.
_QUERY_CREDENTIAL_NAMES = ("access_token", "api_key", "apikey", "key", "token")

# Compared against when the key id is unknown, so an unknown id costs the same time as a wrong secret.
_DUMMY_HASH = "0" * 64

# Writing last_used_at on every request would turn reads into writes; once per window is enough for diagnostics.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


# One statement per audience for the key and its owner, an inner join on that audience's owner table.
# Built once: building the statement on every request costs more CPU than running it.
_CREDENTIAL_QUERIES = {
    Audience.PROVIDER: select(Credential, Provider)
    .join(Provider, Provider.id == Credential.provider_id)
    .where(Credential.key_id == bindparam("key_id")),
    Audience.DEVELOPER: select(Credential, Developer)
    .join(Developer, Developer.id == Credential.developer_id)
    .where(Credential.key_id == bindparam("key_id")),
}


def challenge_headers(error: str | None = None) -> dict[str, str]:
    """Return the ``WWW-Authenticate`` header of a 401, with the RFC 6750 ``error`` code when given."""
    value = 'Bearer realm="federation"'
    if error is not None:
        value += f', error="{error}"'

    return {"WWW-Authenticate": value}


def invalid_token(message: str) -> Unauthorized:
    return Unauthorized(message, headers=challenge_headers("invalid_token"))


def bearer_token() -> str | None:
    """Return the bearer token of the request, or raise 401 for a malformed Authorization header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None

    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "The Authorization header must read 'Bearer <key or token>'.",
            headers=challenge_headers("invalid_request"),
        )

    if "," in token:
        # WSGI servers join repeated headers with commas, and no API key or token contains one.
        raise Unauthorized(
            "The Authorization header has several values, as when it is sent twice. "
            "Send one Authorization header: 'Bearer <key or token>'.",
            headers=challenge_headers("invalid_request"),
        )

    return token.strip()


def authenticate(audience: Audience) -> Principal:
    """Return the principal of ``audience`` that the request proves, or raise :class:`Unauthorized`.

    The result is cached for the request so that stacked decorators look the credential up once.
    """
    cache: dict[Audience, Principal] = request_state().setdefault("principals", {})
    if audience in cache:
        return cache[audience]

    state = get_state()
    oidc: OIDCComponent | None = state.components.get("oidc")
    token = bearer_token()
    if token is None:
        # An explicit Authorization header wins; the browser session is only the fallback.
        session_principal = oidc.authenticate_session(audience) if oidc is not None else None
        if session_principal is not None:
            cache[audience] = session_principal
            record_authenticated_request(session_principal)
            return session_principal

        if any(name in request.args for name in _QUERY_CREDENTIAL_NAMES):
            raise Unauthorized(
                "Credentials in the query string are not accepted. Send 'Authorization: Bearer <key>' instead.",
                headers=challenge_headers("invalid_request"),
            )

        raise Unauthorized(headers=challenge_headers())

    principal: Principal | None = None
    if looks_like_api_key(token):
        if not state.settings.legacy_auth_enabled:
            raise invalid_token("API keys are no longer accepted here. Authenticate with an OIDC access token instead.")

        principal = authenticate_api_key(token, audience)
    else:
        if oidc is None:
            raise invalid_token(
                "The bearer token is not a valid API key, and this server accepts no other tokens. "
                "Send an API key (ffp_... or ffd_...) issued by the platform."
            )

        principal = oidc.authenticate_bearer(token, audience)

    cache[audience] = principal
    record_authenticated_request(principal)
    return principal


def authenticate_api_key(key: str, audience: Audience) -> Principal:
    """Verify an API key of ``audience`` against its stored hash and return its principal.

    With ``FEDERATION_CREDENTIAL_CACHE_SECONDS`` on, a key verified recently in this
    process is checked against its cached hash and expiry instead of the database.
    """
    try:
        parsed = parse_key(key)
    except MalformedKey as error:
        raise invalid_token(str(error)) from None

    if parsed.audience is not audience:
        raise invalid_token(
            f"This route takes a {audience.value} credential; the key is a {parsed.audience.value} key."
        )

    presented_hash = hash_key(key)
    cache = get_credential_cache()
    if cache is None:
        return _verify_stored_key(presented_hash, parsed.key_id, audience, None)

    cached = cache.get(audience, parsed.key_id)
    now = utcnow()
    if cached is None or now - cached.last_used_at >= LAST_USED_RESOLUTION:
        # A stale last_used_at goes through the query, which updates it, so diagnostics stay accurate.
        return _verify_stored_key(presented_hash, parsed.key_id, audience, cache)

    # A wrong secret with a cached key id fails here and leaves the entry as it is.
    if not hmac.compare_digest(presented_hash, cached.key_hash):
        raise _invalid_key()

    if cached.expires_at is not None and cached.expires_at <= now:
        raise _expired_key()

    return cached.principal


def _verify_stored_key(
    presented_hash: str, key_id: str, audience: Audience, cache: CredentialCache | None
) -> Principal:
    """Verify the key against its database row, and cache the principal when ``cache`` is given."""
    lookup = cache.begin_lookup() if cache is not None else None
    session = get_state().session
    row = session.execute(_CREDENTIAL_QUERIES[audience], {"key_id": key_id}).one_or_none()
    credential: Credential | None = row[0] if row is not None else None
    owner: Provider | Developer | None = cast("Provider | Developer", row[1]) if row is not None else None
    stored_hash = credential.key_hash if credential is not None else _DUMMY_HASH
    if not hmac.compare_digest(presented_hash, stored_hash) or credential is None or owner is None:
        raise _invalid_key()

    now = utcnow()
    if credential.revoked_at is not None:
        raise invalid_token("The API key has been revoked. Ask the platform for a new key.")

    # Read before _touch commits, because the commit expires the row and reading it again would query.
    expires_at = credential.expires_at
    if expires_at is not None and expires_at <= now:
        raise _expired_key()

    principal = Principal(
        audience=audience,
        subject_id=owner.public_id,
        subject_pk=owner.id,
        display_name=owner.name,
        credential_id=credential.key_id,
        entitlements=frozenset(credential.entitlements),
        auth_method=AUTH_METHOD_API_KEY,
    )
    last_used_at = _touch(credential, now)
    if cache is not None and lookup is not None:
        cache.put(
            lookup,
            audience,
            key_id,
            key_hash=stored_hash,
            principal=principal,
            expires_at=expires_at,
            last_used_at=last_used_at,
        )

    return principal


def _invalid_key() -> Unauthorized:
    return invalid_token("The API key is not valid. Check that it was copied whole, or ask the platform for a new key.")


def _expired_key() -> Unauthorized:
    return invalid_token("The API key has expired. Ask the platform for a new key.")


def _touch(credential: Credential, now: dt.datetime) -> dt.datetime:
    """Record that the key was used, at most once per :data:`LAST_USED_RESOLUTION`, and return its ``last_used_at``."""
    if credential.last_used_at is not None and now - credential.last_used_at < LAST_USED_RESOLUTION:
        return credential.last_used_at

    session = get_state().session
    # A separate UPDATE rather than an ORM change, so the view's own transaction stays untouched.
    session.execute(update(Credential).where(Credential.id == credential.id).values(last_used_at=now))
    session.commit()
    return now
