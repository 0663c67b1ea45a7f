"""The hosting rules of docs/federation/hosting.md: ProxyFix and settings shared by several hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify
from sqlalchemy import select
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_federation import admin, with_audit, with_rate_limit
from flask_federation.models import AuditEvent
from flask_federation.state import get_state

from .conftest import bearer


def _app_with_status_route(make_app: Callable[..., Flask], x_for: int | None) -> Flask:
    """Return an app whose /status route is rate-limited per client address, behind ProxyFix when x_for is set."""
    app = make_app(FEDERATION_ANONYMOUS_RATE_LIMIT="2/minute")

    @app.get("/status")
    @with_audit("status.read")
    @with_rate_limit()
    def status() -> Any:
        return jsonify(ok=True)

    if x_for is not None:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=x_for)  # type: ignore[method-assign]

    return app


def _statuses(app: Flask, forwarded_for: list[str]) -> list[int]:
    client = app.test_client()
    return [client.get("/status", headers={"X-Forwarded-For": address}).status_code for address in forwarded_for]


def test_without_proxyfix_clients_share_counter(make_app: Callable[..., Flask]) -> None:
    app = _app_with_status_route(make_app, x_for=None)

    assert _statuses(app, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [200, 200, 429]


def test_proxyfix_counts_each_client(make_app: Callable[..., Flask]) -> None:
    app = _app_with_status_route(make_app, x_for=1)

    assert _statuses(app, ["203.0.113.1", "203.0.113.1", "203.0.113.1"]) == [200, 200, 429]
    assert _statuses(app, ["203.0.113.2"]) == [200]


def test_proxyfix_ignores_client_written_entries(make_app: Callable[..., Flask]) -> None:
    app = _app_with_status_route(make_app, x_for=1)
    # The client wrote the first entry itself; the one proxy appended the address it saw.
    spoofed = ["198.51.100.1, 203.0.113.1", "198.51.100.2, 203.0.113.1", "198.51.100.3, 203.0.113.1"]

    assert _statuses(app, spoofed) == [200, 200, 429]


def test_proxyfix_sets_audit_client_address(make_app: Callable[..., Flask]) -> None:
    app = _app_with_status_route(make_app, x_for=1)
    _statuses(app, ["198.51.100.9, 203.0.113.7"])

    with app.app_context():
        addresses = get_state().session.execute(
            select(AuditEvent.client_address).where(AuditEvent.action == "status.read")
        ).scalars().all()

    assert addresses == ["203.0.113.7"]


def test_cursor_needs_same_secret_on_every_host(make_app: Callable[..., Flask]) -> None:
    first_host = make_app(SECRET_KEY="shared-secret")
    same_secret_host = make_app(SECRET_KEY="shared-secret")
    other_secret_host = make_app(SECRET_KEY="another-secret")
    with first_host.app_context():
        provider = admin.create_provider("Provider")
        for number in range(3):
            admin.create_tenant(provider.public_id, name=f"T{number}", slug=f"t-{number}", region="eu-west-1")
        key = admin.issue_key(provider.public_id, ["tenants:read"]).key
        get_state().session.remove()

    first_page = first_host.test_client().get("/federation/provider/v1/tenants?limit=1", headers=bearer(key))
    cursor = first_page.json["data"]["next_cursor"]
    next_page = f"/federation/provider/v1/tenants?limit=1&cursor={cursor}"
    same_secret = same_secret_host.test_client().get(next_page, headers=bearer(key))
    other_secret = other_secret_host.test_client().get(next_page, headers=bearer(key))

    assert cursor is not None
    assert same_secret.status_code == 200
    assert other_secret.status_code == 400
    assert other_secret.json["error"]["code"] == "invalid_cursor"
