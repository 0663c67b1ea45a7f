"""Running a guard before a view, for every public decorator alike."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Response, current_app

from . import signals
from .envelope import error_response
from .errors import FederationError

logger = logging.getLogger("flask_federation")


def run_guard(guard: Callable[[], object]) -> Response | None:
    """Run ``guard``; when it raises a federation error, return that error's envelope response.

    Guards render their own response instead of raising through Flask, so a host's
    error handler for 401, 403 or 429 cannot replace the federation body, on host
    routes as on the federation's own. Every denial is logged at info level and sent
    as the ``request_denied`` signal.
    """
    try:
        guard()
    except FederationError as error:
        logger.info("Denied request: %s (status %s)", error.error_code, error.status_code)
        signals.request_denied.send(current_app._get_current_object(), error=error)  # type: ignore[attr-defined]
        return error_response(error)

    return None
