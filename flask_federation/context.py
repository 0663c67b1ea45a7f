"""Per-request state of the extension.

Kept in the WSGI environ rather than on ``flask.g``: ``g`` belongs to the app
context, which tests and CLI code often keep across several requests, and a
principal or request id must never leak from one request into the next.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

_ENVIRON_KEY = "flask_federation.request_state"


def request_state() -> dict[str, Any]:
    """Return the mutable per-request state dict; empty and unshared outside a request."""
    if not has_request_context():
        return {}

    state: dict[str, Any] = request.environ.setdefault(_ENVIRON_KEY, {})
    return state
