"""The request id that every federation response and log line carries."""

from __future__ import annotations

import re
import uuid

from flask import current_app, has_request_context, request

from .context import request_state

HEADER = "X-Request-ID"
MAX_LENGTH = 128

# Letters, digits and a few separators only: a request id is echoed into a
# response header and into logs, so CR/LF or other control characters must not pass.
_SAFE_PATTERN = re.compile(r"^[A-Za-z0-9._:@+=/-]{1,128}$")


def is_valid_request_id(value: str) -> bool:
    # Imported here: the audit package imports this module, so a module-level import would be circular.
    from .audit.redaction import API_KEY_PATTERN

    # A client that pastes its API key into the header must not see it echoed into logs.
    return bool(_SAFE_PATTERN.fullmatch(value)) and API_KEY_PATTERN.search(value) is None


def get_request_id() -> str | None:
    """Return this request's id, taking a valid ``X-Request-ID`` or generating one.

    Returns None outside a request, for example in the CLI.
    """
    if not has_request_context():
        return None

    store = request_state()
    cached: str | None = store.get("request_id")
    if cached is not None:
        return cached

    incoming = request.headers.get(HEADER, "")
    state = current_app.extensions.get("federation")
    trust = state.settings.trust_request_id if state is not None else True
    request_id = incoming if trust and is_valid_request_id(incoming) else f"req_{uuid.uuid4().hex}"
    store["request_id"] = request_id
    return request_id
