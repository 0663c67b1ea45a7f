"""Tenant queries and writes, scoped to the calling provider. Usable without HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from .. import admin
from ..audit import changes_between, record
from ..auth.principal import Principal
from ..entitlements import TENANTS_READ, TENANTS_WRITE, Audience
from ..errors import NotFound
from ..models import Provider, Tenant
from ..schemas import TenantSchema, unstorable_text_reason
from ..state import get_state
from .access import require
from .pagination import fetch_keyset_page, resolve_page_size


@dataclasses.dataclass(frozen=True)
class TenantPage:
    items: list[Tenant]
    next_cursor: str | None


#: Maximum length of the part of a requested tenant id that an error message repeats; real ids have 24 characters.
_MAX_ECHOED_ID_LENGTH = 64


def _not_found(tenant_id: str) -> NotFound:
    # The same error for a missing tenant and another provider's tenant, so ids cannot be probed.
    shown = tenant_id if len(tenant_id) <= _MAX_ECHOED_ID_LENGTH else tenant_id[:_MAX_ECHOED_ID_LENGTH] + "..."
    return NotFound(f"Tenant {shown!r} was not found. List your tenants to find its id.")


def list_tenants(
    principal: Principal,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> TenantPage:
    """Return one page of the caller's tenants, newest first.

    Keyset pagination on ``(created_at, id)``: a deep page costs what the first one
    does, and rows inserted between two fetches are neither skipped nor repeated.
    """
    require(principal, Audience.PROVIDER, TENANTS_READ)
    page_size = resolve_page_size(limit)
    filters = {"status": status}
    query = select(Tenant).where(Tenant.provider_id == principal.subject_pk)
    if status is not None:
        query = query.where(Tenant.status == status)

    items, next_cursor = fetch_keyset_page(
        query,
        position=(Tenant.created_at, Tenant.id),
        subject=principal.subject_id,
        filters=filters,
        limit=page_size,
        cursor=cursor,
    )
    return TenantPage(items, next_cursor)


def _find_tenant(principal: Principal, tenant_id: str) -> Tenant:
    if unstorable_text_reason(tenant_id) is not None:
        # No stored id contains such a character, and PostgreSQL rejects a NUL even as a query parameter.
        raise _not_found(tenant_id)

    tenant = (
        get_state()
        .session.execute(
            select(Tenant).where(Tenant.public_id == tenant_id, Tenant.provider_id == principal.subject_pk)
        )
        .scalar_one_or_none()
    )
    if tenant is None:
        raise _not_found(tenant_id)

    return tenant


def get_tenant(principal: Principal, tenant_id: str) -> Tenant:
    """Return the caller's tenant ``tenant_id``, or raise 404 if it is missing or another provider's."""
    require(principal, Audience.PROVIDER, TENANTS_READ)
    return _find_tenant(principal, tenant_id)


def _commit_tenant_write(
    principal: Principal, action: str, tenant: Tenant, before: dict[str, Any] | None, http_status: int
) -> None:
    """Commit one tenant write together with its audit event, so neither is committed without the other.

    ``before`` is the tenant as the API showed it before the write (None for a create);
    the event records only the fields that changed. A failing audit write raises, and the
    error handler rolls the tenant change back with it.
    """
    session = get_state().session
    session.flush()
    record(
        action,
        kind="write",
        target_type="tenant",
        target_id=tenant.public_id,
        http_status=http_status,
        changes=changes_between(before, TenantSchema().dump(tenant)),
        principal=principal,
    )
    session.commit()


def create_tenant(principal: Principal, fields: Mapping[str, Any]) -> Tenant:
    """Create a tenant of the calling provider from API fields and return it.

    Raises 403 without the ``tenants:write`` entitlement (before any query), 422 for
    invalid, unknown or read-only fields, and 409 when the slug is taken.
    """
    require(principal, Audience.PROVIDER, TENANTS_WRITE)
    # Validated before the provider lookup so that invalid input costs no query; add_tenant validates again.
    admin.load_tenant_fields(fields)
    provider = get_state().session.get(Provider, principal.subject_pk)
    if provider is None:
        raise NotFound(f"Provider {principal.subject_id!r} was not found; it may have been deleted.")

    tenant = admin.add_tenant(provider, fields)
    _commit_tenant_write(principal, "tenant.create", tenant, None, 201)
    return tenant


def update_tenant(principal: Principal, tenant_id: str, fields: Mapping[str, Any]) -> Tenant:
    """Apply a partial update to the caller's tenant ``tenant_id`` and return the tenant.

    Writable fields: ``name``, ``slug``, ``status`` and ``metadata`` (replaced whole).
    Raises 403 without ``tenants:write`` (before any query), 422 for an empty change
    set or invalid, unknown or read-only fields (``region`` included), 404 when the
    tenant is missing or another provider's, and 409 when the new slug is taken.
    """
    require(principal, Audience.PROVIDER, TENANTS_WRITE)
    changes = admin.load_tenant_changes(fields)
    tenant = _find_tenant(principal, tenant_id)
    before = TenantSchema().dump(tenant)
    admin.apply_tenant_changes(tenant, changes)
    _commit_tenant_write(principal, "tenant.update", tenant, before, 200)
    return tenant
