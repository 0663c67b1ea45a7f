"""Provisioning API for host apps and the CLI: providers, developers, tenants and API keys.

These functions run in an app context and commit their own transaction. They
trust their caller (no principal, no entitlement check): call them from
provisioning code and admin tools, never directly from a partner-facing route.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from . import signals
from .auth.api_keys import generate_key, hash_key
from .entitlements import Audience, validate_entitlements
from .errors import Conflict, NotFound, ValidationFailed
from .models import Credential, Developer, Provider, Tenant, utcnow
from .schemas import TenantSchema, TenantUpdateSchema, load_or_raise
from .state import get_state

logger = logging.getLogger("flask_federation")


@dataclasses.dataclass(frozen=True)
class IssuedKey:
    """A newly issued API key. ``key`` is the only copy of the secret: show it once, store it nowhere."""

    key: str
    credential: Credential

    def __repr__(self) -> str:
        return f"IssuedKey(key_id={self.credential.key_id!r}, key=<redacted>)"


def _validate_name(name: str, what: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 200:
        raise ValidationFailed(details={"name": [f"A {what} name must be 1 to 200 characters."]})

    return cleaned


def create_provider(name: str) -> Provider:
    """Create a provider named ``name`` and return it."""
    provider = Provider(name=_validate_name(name, "provider"))
    session = get_state().session
    session.add(provider)
    session.commit()
    return provider


def create_developer(name: str) -> Developer:
    """Create a developer named ``name`` and return it."""
    developer = Developer(name=_validate_name(name, "developer"))
    session = get_state().session
    session.add(developer)
    session.commit()
    return developer


def get_provider(public_id: str) -> Provider:
    provider = get_state().session.execute(select(Provider).where(Provider.public_id == public_id)).scalar_one_or_none()
    if provider is None:
        raise NotFound(f"Provider {public_id!r} was not found. List providers with 'flask federation list-keys'.")

    return provider


def get_developer(public_id: str) -> Developer:
    developer = (
        get_state().session.execute(select(Developer).where(Developer.public_id == public_id)).scalar_one_or_none()
    )
    if developer is None:
        raise NotFound(f"Developer {public_id!r} was not found.")

    return developer


def load_tenant_fields(fields: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate tenant input with the API's schema, raising 422 with per-field details."""
    return load_or_raise(TenantSchema(), fields, partial=partial)


def load_tenant_changes(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the changes of a tenant update, raising 422 when one is invalid or none is given."""
    changes = load_or_raise(TenantUpdateSchema(), fields)
    if not changes:
        writable = ", ".join(sorted(name for name, field in TenantUpdateSchema().fields.items() if not field.dump_only))
        raise ValidationFailed(
            f"The request changes no field. Send at least one of: {writable}.",
            details={"_schema": ["At least one field is required."]},
        )

    return changes


def _write_tenant(slug: str, change: Callable[[Session], None]) -> None:
    session = get_state().session
    try:
        # The change is made inside the savepoint, because begin_nested() flushes pending
        # changes first: a duplicate slug then rolls back the savepoint only, and the
        # caller's transaction stays usable.
        with session.begin_nested():
            change(session)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"Provider already has a tenant with slug {slug!r}. Choose another slug.",
            details={"slug": ["Already in use by another tenant of this provider."]},
        ) from None


def add_tenant(provider: Provider, fields: Mapping[str, Any]) -> Tenant:
    """Add a tenant of ``provider`` to the session without committing, raising 409 on a duplicate slug."""
    loaded = load_tenant_fields(fields)
    tenant = Tenant(provider_id=provider.id, **loaded)
    tenant.provider = provider
    _write_tenant(tenant.slug, lambda session: session.add(tenant))
    return tenant


def apply_tenant_changes(tenant: Tenant, changes: Mapping[str, Any]) -> None:
    """Apply changes loaded by :func:`load_tenant_changes` without committing, raising 409 on a duplicate slug."""

    def change(session: Session) -> None:
        for attribute, value in changes.items():
            setattr(tenant, attribute, value)

    _write_tenant(changes.get("slug", tenant.slug), change)


def create_tenant(provider_id: str, **fields: Any) -> Tenant:
    """Create a tenant for the provider with public id ``provider_id`` and return it."""
    tenant = add_tenant(get_provider(provider_id), fields)
    get_state().session.commit()
    return tenant


def issue_key(
    owner_id: str,
    entitlements: Iterable[str],
    *,
    label: str = "",
    expires_at: dt.datetime | None = None,
) -> IssuedKey:
    """Issue an API key to the provider (``prv_...``) or developer (``dev_...``) ``owner_id``.

    Unknown entitlements raise :class:`ValidationFailed`. The key is returned once
    and only its hash is stored.
    """
    if owner_id.startswith("prv_"):
        audience = Audience.PROVIDER
    elif owner_id.startswith("dev_"):
        audience = Audience.DEVELOPER
    else:
        raise ValidationFailed(f"Owner id {owner_id!r} must start with 'prv_' (provider) or 'dev_' (developer).")

    try:
        granted = validate_entitlements(audience, entitlements)
    except ValueError as error:
        raise ValidationFailed(str(error), details={"entitlements": [str(error)]}) from None

    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= utcnow()):
        raise ValidationFailed("The expiry must be a timezone-aware time in the future.")

    key, key_id = generate_key(audience)
    credential = Credential(
        key_id=key_id,
        audience=audience.value,
        key_hash=hash_key(key),
        entitlements=sorted(granted),
        label=label,
        expires_at=expires_at,
    )
    if audience is Audience.PROVIDER:
        credential.provider_id = get_provider(owner_id).id
    else:
        credential.developer_id = get_developer(owner_id).id

    session = get_state().session
    session.add(credential)
    session.commit()
    logger.info("Issued API key %s to %s with entitlements %s", key_id, owner_id, ", ".join(sorted(granted)))
    signals.key_issued.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        key_id=key_id,
        audience=audience.value,
        owner_id=owner_id,
        entitlements=sorted(granted),
    )
    return IssuedKey(key, credential)


def revoke_key(key_id: str) -> Credential:
    """Revoke the API key ``key_id``; revoking twice keeps the first revocation time."""
    session = get_state().session
    credential = session.execute(select(Credential).where(Credential.key_id == key_id)).scalar_one_or_none()
    if credential is None:
        raise NotFound(f"API key {key_id!r} was not found. List keys with 'flask federation list-keys'.")

    if credential.revoked_at is None:
        credential.revoked_at = utcnow()
        session.commit()
        logger.info("Revoked API key %s", key_id)
        signals.key_revoked.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            key_id=key_id,
            audience=credential.audience,
        )

    return credential


def list_keys(owner_id: str | None = None) -> list[Credential]:
    """Return the API keys, all or those of one provider or developer, oldest first."""
    query = (
        select(Credential)
        .options(joinedload(Credential.provider), joinedload(Credential.developer))
        .order_by(Credential.created_at, Credential.id)
    )
    if owner_id is not None and owner_id.startswith("prv_"):
        query = query.where(Credential.provider_id == get_provider(owner_id).id)
    elif owner_id is not None:
        query = query.where(Credential.developer_id == get_developer(owner_id).id)

    return list(get_state().session.execute(query).scalars())
