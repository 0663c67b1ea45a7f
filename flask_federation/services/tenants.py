"""Tenant queries, scoped to the calling provider. Usable without HTTP."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select, tuple_

from ..auth.principal import Principal
from ..entitlements import TENANTS_READ, Audience
from ..errors import NotFound
from ..models import Tenant
from ..state import get_state
from .access import require
from .pagination import decode_cursor, encode_cursor, resolve_page_size


@dataclasses.dataclass(frozen=True)
class TenantPage:
    items: list[Tenant]
    next_cursor: str | None


def _not_found(tenant_id: str) -> NotFound:
    # The same error for a missing tenant and another provider's tenant, so ids cannot be probed.
    return NotFound(f"Tenant {tenant_id!r} was not found.")


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

    if cursor is not None:
        created_at, row_id = decode_cursor(cursor, principal.subject_id, filters)
        query = query.where(tuple_(Tenant.created_at, Tenant.id) < tuple_(created_at, row_id))

    query = query.order_by(Tenant.created_at.desc(), Tenant.id.desc()).limit(page_size + 1)
    rows = list(get_state().session.execute(query).scalars())
    items = rows[:page_size]
    next_cursor = None
    if len(rows) > page_size:
        last = items[-1]
        next_cursor = encode_cursor(principal.subject_id, filters, last.created_at, last.id)

    return TenantPage(items, next_cursor)


def get_tenant(principal: Principal, tenant_id: str) -> Tenant:
    """Return the caller's tenant ``tenant_id``, or raise 404 if it is missing or another provider's."""
    require(principal, Audience.PROVIDER, TENANTS_READ)
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
