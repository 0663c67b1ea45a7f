"""The JSON envelope of every federation response.

Success: ``{"ok": true, "data": ...}``. Failure:
``{"ok": false, "error": {"code", "message", "details"?, "request_id"}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app

from .errors import FederationError
from .request_id import HEADER as REQUEST_ID_HEADER
from .request_id import get_request_id

logger = logging.getLogger("flask_federation")

JSON_MIMETYPE = "application/json"


def _json_response(body: Mapping[str, Any], status: int, headers: Mapping[str, str] | None) -> Response:
    response = current_app.response_class(
        current_app.json.dumps(body) + "\n",
        status=status,
        mimetype=JSON_MIMETYPE,
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value

    request_id = get_request_id()
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id

    return response


def success_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Wrap ``data`` in the success envelope."""
    return _json_response({"ok": True, "data": data}, status, headers)


def error_body(error: FederationError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.error_code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details

    body["request_id"] = get_request_id()
    return {"ok": False, "error": body}


def error_response(error: FederationError) -> Response:
    """Render ``error`` in the error envelope with its status and headers."""
    return _json_response(error_body(error), error.status_code, error.extra_headers)
