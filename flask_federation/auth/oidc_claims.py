"""Mapping validated OIDC claims to a provider or developer and its entitlements."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ..entitlements import CATALOGUE, Audience
from ..models import Developer, Provider
from ..state import get_state

# Claim values that go into a principal are echoed in diagnostics and logs, so
# only short values of a safe alphabet are used as they are.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,128}$")


def claimed_subject_id(claims: Mapping[str, Any], claim_name: str) -> str | None:
    """Return the public id that ``claims[claim_name]`` holds, or None when it is missing or not a safe string."""
    value = claims.get(claim_name)
    if isinstance(value, str) and _SAFE_VALUE.fullmatch(value):
        return value

    return None


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Return the scopes of a token: ``scope`` (RFC 9068, space-separated) and ``scp`` (a list, as some providers send)."""
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())

    scp = claims.get("scp")
    if isinstance(scp, str):
        scopes.update(scp.split())
    elif isinstance(scp, list):
        scopes.update(item for item in scp if isinstance(item, str))

    return frozenset(scopes)


def entitlements_for_scopes(
    scopes: frozenset[str], audience: Audience, scope_map: Mapping[str, tuple[str, ...]]
) -> frozenset[str]:
    """Return the entitlements of ``audience`` that ``scopes`` grant through ``scope_map``."""
    granted = {entitlement for scope in scopes for entitlement in scope_map.get(scope, ())}
    return frozenset(granted) & CATALOGUE[audience]


def login_scope(audience: Audience, scope_map: Mapping[str, tuple[str, ...]]) -> str:
    """Return the ``scope`` parameter of a login for ``audience``: ``openid`` and every scope that grants it an entitlement."""
    scopes = sorted(scope for scope, entitlements in scope_map.items() if CATALOGUE[audience].intersection(entitlements))
    return " ".join(["openid", *scopes])


def load_owner(audience: Audience, public_id: str) -> Provider | Developer | None:
    """Return the provider or developer with ``public_id``, or None when there is none."""
    session = get_state().session
    if audience is Audience.PROVIDER:
        return session.execute(select(Provider).where(Provider.public_id == public_id)).scalar_one_or_none()

    return session.execute(select(Developer).where(Developer.public_id == public_id)).scalar_one_or_none()


def token_credential_id(claims: Mapping[str, Any], token: str) -> str:
    """Return the token's ``jti`` when it is a safe string, else an id derived from the token's SHA-256.

    The result names the credential in diagnostics and logs; the derived form
    cannot be turned back into the token.
    """
    jti = claims.get("jti")
    if isinstance(jti, str) and _SAFE_VALUE.fullmatch(jti):
        return jti

    return "sha256:" + hashlib.sha256(token.encode("ascii", "replace")).hexdigest()[:32]
