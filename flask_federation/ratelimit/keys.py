"""Whose counter a request uses: its principal, or its client address."""

from __future__ import annotations

from flask import request

from ..auth.principal import get_current_principal


def client_address() -> str:
    """Return the client address that Werkzeug reports; behind a reverse proxy that needs ``ProxyFix``."""
    return request.remote_addr or "unknown"


def request_key() -> str:
    """Return the counter key of the current request: its principal's, else one per client address."""
    principal = get_current_principal()
    if principal is not None:
        return principal.rate_limit_key

    return f"address:{client_address()}"
