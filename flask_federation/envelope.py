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


def _without_credentials(value: Any) -> Any:
    # Imported here: the audit package imports this module, so a module-level import would be circular.
    from .audit.redaction import redact_credentials

    if isinstance(value, str):
        return redact_credentials(value)

    if isinstance(value, Mapping):
        return {
            redact_credentials(key) if isinstance(key, str) else key: _without_credentials(item)
            for key, item in value.items()
        }

    if isinstance(value, list | tuple):
        return [_without_credentials(item) for item in value]

    return value


def error_body(error: FederationError) -> dict[str, Any]:
    """Return the error envelope of ``error``.

    Messages and details can repeat client input, such as a path segment or a field
    name, so API keys and JWTs in them are redacted. A client that pasted its key
    into the wrong place must not find it in an error body that gets logged.
    """
    body: dict[str, Any] = {"code": error.error_code, "message": _without_credentials(error.message)}
    if error.details is not None:
        body["details"] = _without_credentials(error.details)

    body["request_id"] = get_request_id()
    return {"ok": False, "error": body}


def error_response(error: FederationError) -> Response:
    """Render ``error`` in the error envelope with its status and headers."""
    return _json_response(error_body(error), error.status_code, error.extra_headers)
