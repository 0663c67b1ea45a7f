"""Developer routes: ``{prefix}/developer/v1``."""

from __future__ import annotations

from flask import Blueprint, Response

from ..audit import annotate, with_audit
from ..auth import current_principal, with_developer_auth
from ..entitlements import AUDIT_READ, DIAGNOSTICS_READ
from ..envelope import success_response
from ..openapi import documented
from ..ratelimit import with_rate_limit
from ..schemas import DiagnosticsSchema
from ..services.diagnostics import get_diagnostics
from .audit import add_audit_route
from .errors import install_error_handlers

NAME = "federation_developer"


def create_developer_blueprint() -> Blueprint:
    blueprint = Blueprint(NAME, __name__)
    install_error_handlers(blueprint)

    @blueprint.get("/diagnostics")
    @documented(
        "Describe your integration",
        tag="Diagnostics",
        entitlement=DIAGNOSTICS_READ,
        response=DiagnosticsSchema,
        errors=(401, 403, 503),
        rate_limited=True,
    )
    @with_audit("diagnostics.read", target_type="developer")
    @with_rate_limit()
    @with_developer_auth(DIAGNOSTICS_READ)
    def diagnostics() -> Response:
        """Who the platform thinks you are, how you authenticated, and what you may do."""
        annotate(target_id=current_principal.subject_id)
        return success_response(DiagnosticsSchema().dump(get_diagnostics(current_principal)))

    add_audit_route(blueprint, with_developer_auth(AUDIT_READ))
    return blueprint
