"""Provider routes: ``{prefix}/provider/v1``."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from ..audit import annotate, with_audit
from ..auth import current_principal, with_provider_auth
from ..entitlements import AUDIT_READ, TENANTS_READ, TENANTS_WRITE
from ..envelope import success_response
from ..idempotency import with_idempotency_required
from ..openapi import documented
from ..ratelimit import with_rate_limit
from ..request_body import load_query, read_json_object
from ..schemas import TenantListQuerySchema, TenantPageSchema, TenantSchema, TenantUpdateSchema
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

    @blueprint.post("/tenants")
    @documented(
        "Create a tenant",
        tag="Tenants",
        entitlement=TENANTS_WRITE,
        body=TenantSchema,
        response=TenantSchema,
        status=201,
        errors=(400, 401, 403, 409, 413, 415, 422),
        headers={"Location": {"description": "Path of the new tenant.", "schema": {"type": "string"}}},
        rate_limited=True,
    )
    @with_audit("tenant.create", kind="write", target_type="tenant")
    @with_rate_limit()
    @with_provider_auth(TENANTS_WRITE)
    @with_idempotency_required
    def create_tenant() -> Response:
        """`id`, `provider_id`, `created_at` and `updated_at` are set by the server; sending them is a 422."""
        tenant = tenants.create_tenant(current_principal, read_json_object())
        location = url_for(f"{NAME}.get_tenant", tenant_id=tenant.public_id)
        return success_response(TenantSchema().dump(tenant), status=201, headers={"Location": location})

    @blueprint.patch("/tenants/<tenant_id>")
    @documented(
        "Update one of your tenants",
        tag="Tenants",
        entitlement=TENANTS_WRITE,
        body=TenantUpdateSchema,
        response=TenantSchema,
        errors=(400, 401, 403, 404, 409, 413, 415, 422),
        rate_limited=True,
    )
    @with_audit("tenant.update", kind="write", target_type="tenant", target_id_arg="tenant_id")
    @with_rate_limit()
    @with_provider_auth(TENANTS_WRITE)
    @with_idempotency_required
    def update_tenant(tenant_id: str) -> Response:
        """Send only the fields to change: `name`, `slug`, `status` (suspend or resume), `metadata` (replaced whole).
        `region` is fixed at creation. An empty object, unknown or read-only fields are a 422."""
        tenant = tenants.update_tenant(current_principal, tenant_id, read_json_object())
        return success_response(TenantSchema().dump(tenant))

    add_audit_route(blueprint, with_provider_auth(AUDIT_READ))
    return blueprint
