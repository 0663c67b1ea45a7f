"""Provider routes: ``{prefix}/provider/v1``."""

from __future__ import annotations

from flask import Blueprint, Response

from ..audit import annotate, with_audit
from ..auth import current_principal, with_provider_auth
from ..entitlements import AUDIT_READ, TENANTS_READ
from ..envelope import success_response
from ..openapi import documented
from ..ratelimit import with_rate_limit
from ..request_body import load_query
from ..schemas import TenantListQuerySchema, TenantPageSchema, TenantSchema
from ..services import tenants
from .audit import add_audit_route
from .errors import install_error_handlers

NAME = "federation_provider"


def create_provider_blueprint() -> Blueprint:
    blueprint = Blueprint(NAME, __name__)
    install_error_handlers(blueprint)

    @blueprint.get("/tenants")
    @documented(
        "List your tenants",
        tag="Tenants",
        entitlement=TENANTS_READ,
        query=TenantListQuerySchema,
        response=TenantPageSchema,
        errors=(400, 401, 403, 422, 503),
        rate_limited=True,
    )
    @with_audit("tenant.list", target_type="tenant")
    @with_rate_limit()
    @with_provider_auth(TENANTS_READ)
    def list_tenants() -> Response:
        """Newest first, with keyset pagination: pass `next_cursor` back as `cursor` for the next page."""
        query = load_query(TenantListQuerySchema())
        page = tenants.list_tenants(
            current_principal,
            status=query.get("status"),
            limit=query.get("limit"),
            cursor=query.get("cursor"),
        )
        annotate(result_count=len(page.items))
        return success_response(TenantPageSchema().dump(page))

    @blueprint.get("/tenants/<tenant_id>")
    @documented(
        "Read one of your tenants",
        tag="Tenants",
        entitlement=TENANTS_READ,
        response=TenantSchema,
        errors=(401, 403, 404, 503),
        rate_limited=True,
    )
    @with_audit("tenant.read", target_type="tenant", target_id_arg="tenant_id")
    @with_rate_limit()
    @with_provider_auth(TENANTS_READ)
    def get_tenant(tenant_id: str) -> Response:
        """Another provider's tenant answers 404, exactly like a missing one."""
        tenant = tenants.get_tenant(current_principal, tenant_id)
        return success_response(TenantSchema().dump(tenant))

    add_audit_route(blueprint, with_provider_auth(AUDIT_READ))
    return blueprint
