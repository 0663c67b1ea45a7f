"""The audit route that the provider and developer blueprints share: ``GET .../audit``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response

from ..audit import annotate, with_audit
from ..auth import current_principal
from ..entitlements import AUDIT_READ
from ..envelope import success_response
from ..openapi import documented
from ..ratelimit import with_rate_limit
from ..request_body import load_query
from ..schemas import AuditListQuerySchema, AuditPageSchema
from ..services.audit import list_audit_events


def add_audit_route(blueprint: Blueprint, auth: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Register ``GET /audit`` on ``blueprint``, guarded by ``auth`` (the audience's auth decorator)."""

    @blueprint.get("/audit")
    @documented(
        "List your audit events",
        tag="Audit",
        entitlement=AUDIT_READ,
        query=AuditListQuerySchema,
        response=AuditPageSchema,
        errors=(400, 401, 403, 422, 503),
        rate_limited=True,
    )
    @with_audit("audit.read", target_type="audit_log")
    @with_rate_limit()
    @auth
    def list_audit() -> Response:
        """Events of your own chain, newest first, with keyset pagination: pass `next_cursor` back as `cursor`.

        Filter by `action`, `outcome` and a time range (`since` inclusive, `until` exclusive, ISO 8601 with a
        timezone). Reading the log is itself recorded as an `audit.read` event.
        """
        query = load_query(AuditListQuerySchema())
        page = list_audit_events(current_principal, **query)
        annotate(result_count=len(page.items))
        return success_response(AuditPageSchema().dump(page))
