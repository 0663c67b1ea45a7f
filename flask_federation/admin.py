"""Provisioning API for host apps and the CLI: providers, developers, tenants and API keys.

These functions run in an app context and commit their own transaction. They
trust their caller (no principal, no entitlement check): call them from
provisioning code and admin tools, never directly from a partner-facing route.
Every change commits together with its audit event, attributed to the system
actor (``admin_api``, ``cli``, or the one set with
:func:`flask_federation.audit.acting_as`); when the event cannot be written, the
change is rolled back.
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
from .audit import changes_between, record
from .audit.actors import current_system_actor
from .auth.api_keys import generate_key, hash_key
from .auth.credential_cache import evict_cached_credential
from .entitlements import Audience, validate_entitlements
from .errors import Conflict, NotFound, ValidationFailed
from .models import Credential, Developer, Provider, Tenant, utcnow
from .schemas import TenantSchema, TenantUpdateSchema, load_or_raise
from .state import get_state
from .transaction import savepoint, transaction

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


def _record_change(
    action: str, target_type: str, target_id: str, owner_id: str | None, changes: dict[str, Any] | None
) -> None:
    record(
        action,
        kind="write",
        target_type=target_type,
        target_id=target_id,
        owner_id=owner_id,
        changes=changes,
        actor=current_system_actor(),
    )


def create_provider(name: str) -> Provider:
    """Create a provider named ``name`` and return it."""
    provider = Provider(name=_validate_name(name, "provider"))
    with transaction() as session:
        session.add(provider)
        session.flush()
        after = {"id": provider.public_id, "name": provider.name}
        _record_change("provider.create", "provider", provider.public_id, provider.public_id, changes_between(None, after))

    return provider


def create_developer(name: str) -> Developer:
    """Create a developer named ``name`` and return it."""
    developer = Developer(name=_validate_name(name, "developer"))
    with transaction() as session:
        session.add(developer)
        session.flush()
        after = {"id": developer.public_id, "name": developer.name}
        _record_change(
            "developer.create", "developer", developer.public_id, developer.public_id, changes_between(None, after)
        )

    return developer


def get_provider(public_id: str) -> Provider:
    provider = get_state().session.execute(select(Provider).where(Provider.public_id == public_id)).scalar_one_or_none()
    if provider is None:
        raise NotFound(f"Provider {public_id!r} was not found. Check the id: 'flask federation list-keys' shows the owner of every key.")

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
        with savepoint(session):
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
    provider = get_provider(provider_id)
    with transaction():
        tenant = add_tenant(provider, fields)
        after = TenantSchema().dump(tenant)
        _record_change("tenant.create", "tenant", tenant.public_id, provider.public_id, changes_between(None, after))

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

    granted = _validated_entitlements(audience, entitlements)
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

    with transaction() as session:
        session.add(credential)
        session.flush()
        _record_change("key.issue", "api_key", key_id, owner_id, changes_between(None, _key_state(credential, owner_id)))

    logger.info("Issued API key %s to %s with entitlements %s", key_id, owner_id, ", ".join(sorted(granted)))
    signals.key_issued.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        key_id=key_id,
        audience=audience.value,
        owner_id=owner_id,
        entitlements=sorted(granted),
    )
    return IssuedKey(key, credential)


def _validated_entitlements(audience: Audience, entitlements: Iterable[str]) -> frozenset[str]:
    try:
        return validate_entitlements(audience, entitlements)
    except ValueError as error:
        raise ValidationFailed(str(error), details={"entitlements": [str(error)]}) from None


def _key_state(credential: Credential, owner_id: str) -> dict[str, Any]:
    """Describe a key for its audit events: ids, entitlements and dates, never the secret or its hash."""
    return {
        "key_id": credential.key_id,
        "audience": credential.audience,
        "owner_id": owner_id,
        "entitlements": list(credential.entitlements),
        "label": credential.label,
        "expires_at": credential.expires_at,
        "revoked_at": credential.revoked_at,
    }


def _get_credential(key_id: str) -> tuple[Credential, str]:
    """Return the key ``key_id`` and its owner's public id, or raise 404."""
    credential = (
        get_state()
        .session.execute(
            select(Credential)
            .options(joinedload(Credential.provider), joinedload(Credential.developer))
            .where(Credential.key_id == key_id)
        )
        .scalar_one_or_none()
    )
    if credential is None:
        raise NotFound(f"API key {key_id!r} was not found. List keys with 'flask federation list-keys'.")

    owner = credential.provider or credential.developer
    assert owner is not None, "the one_owner check constraint guarantees an owner"
    return credential, owner.public_id


def revoke_key(key_id: str) -> Credential:
    """Revoke the API key ``key_id``; revoking twice keeps the first revocation time.

    Every call is audited as ``key.revoke``; a repeated revocation records no changes.
    """
    credential, owner_id = _get_credential(key_id)
    newly_revoked = credential.revoked_at is None
    with transaction():
        changes = None
        if newly_revoked:
            before = _key_state(credential, owner_id)
            credential.revoked_at = utcnow()
            changes = changes_between(before, _key_state(credential, owner_id))
        _record_change("key.revoke", "api_key", key_id, owner_id, changes)

    # After the commit, so that a query made after this eviction reads the revocation and cannot cache the key again.
    evict_cached_credential(Audience(credential.audience), key_id)
    if newly_revoked:
        logger.info("Revoked API key %s", key_id)
        signals.key_revoked.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            key_id=key_id,
            audience=credential.audience,
        )

    return credential


def set_key_entitlements(key_id: str, entitlements: Iterable[str]) -> Credential:
    """Replace the entitlements of the API key ``key_id``; requests made with it from then on get the new set.

    Unknown entitlements raise :class:`ValidationFailed`. Audited as ``key.update``.
    """
    credential, owner_id = _get_credential(key_id)
    granted = sorted(_validated_entitlements(Audience(credential.audience), entitlements))
    with transaction():
        before = _key_state(credential, owner_id)
        credential.entitlements = granted
        _record_change("key.update", "api_key", key_id, owner_id, changes_between(before, _key_state(credential, owner_id)))

    evict_cached_credential(Audience(credential.audience), key_id)
    logger.info("Set the entitlements of API key %s to %s", key_id, ", ".join(granted))
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
