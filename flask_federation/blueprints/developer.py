"""Developer routes: ``{prefix}/developer/v1``."""

from __future__ import annotations

from flask import Blueprint, Response

from ..auth import current_principal, with_developer_auth
from ..entitlements import DIAGNOSTICS_READ
from ..envelope import success_response
from ..openapi import documented
from ..ratelimit import with_rate_limit
from ..schemas import DiagnosticsSchema
from ..services.diagnostics import get_diagnostics
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
    @with_rate_limit()
    @with_developer_auth(DIAGNOSTICS_READ)
    def diagnostics() -> Response:
        """Who the platform thinks you are, how you authenticated, and what you may do."""
        return success_response(DiagnosticsSchema().dump(get_diagnostics(current_principal)))

    return blueprint
