"""Diagnostics the platform reports to the calling developer. Usable without HTTP."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..auth.principal import AUTH_METHOD_API_KEY, Principal
from ..auth.usage import recent_requests
from ..entitlements import DIAGNOSTICS_READ, Audience
from ..models import Credential, utcnow
from ..ratelimit.component import rate_limit_status
from ..request_id import get_request_id
from ..state import get_state
from ..version import package_version
from .access import require


def get_diagnostics(principal: Principal) -> dict[str, Any]:
    """Return the caller's identity, auth method, credential, entitlements, feature flags, rate-limit standing
    and recent requests per auth method.

    The credential is described by its id and dates only; the secret is never stored,
    so it cannot be returned.
    """
    require(principal, Audience.DEVELOPER, DIAGNOSTICS_READ)
    state = get_state()
    credential_info: dict[str, Any] = {
        "id": principal.credential_id,
        "created_at": None,
        "expires_at": None,
        "last_used_at": None,
    }
    # Only API keys have a row; an OIDC token id is never looked up, so an issuer cannot make it name a key.
    if principal.auth_method == AUTH_METHOD_API_KEY and principal.credential_id is not None:
        credential = state.session.execute(
            select(Credential).where(Credential.key_id == principal.credential_id)
        ).scalar_one_or_none()
        if credential is not None:
            credential_info.update(
                created_at=credential.created_at,
                expires_at=credential.expires_at,
                last_used_at=credential.last_used_at,
            )

    settings = state.settings
    diagnostics: dict[str, Any] = {
        "principal": {
            "audience": principal.audience.value,
            "id": principal.subject_id,
            "name": principal.display_name,
        },
        "auth_method": principal.auth_method,
        "recent_requests": recent_requests(principal),
        "credential": credential_info,
        "entitlements": sorted(principal.entitlements),
        "feature_flags": {
            "legacy_auth_enabled": bool(settings.legacy_auth_enabled),
            "oidc_enabled": bool(settings.oidc_enabled),
        },
        "server_time": utcnow(),
        "version": package_version(),
        "request_id": get_request_id() or "",
        "rate_limit": rate_limit_status(principal),
    }
    return diagnostics
