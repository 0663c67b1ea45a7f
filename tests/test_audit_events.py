"""One audit event per federation request and per audited host route, with the right fields and outcome."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, jsonify

from flask_federation import record, signals, with_audit, with_provider_auth
from flask_federation.audit import annotate
from flask_federation.errors import Conflict, TooManyRequests
from flask_federation.guard import run_guard

from .audit_support import all_events, failing_audit_inserts, only_event
from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"


def test_tenant_list_success_fields(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers={**bearer(world.key_a), "User-Agent": "partner-sdk/1.2"})
    assert response.status_code == 200
    event = only_event(response)
    assert event.action == "tenant.list"
    assert event.kind == "read"
    assert event.outcome == "success"
    assert event.http_status == 200
    assert event.error_code is None
    assert event.result_count == 1
    assert event.actor_type == "provider"
    assert event.actor_id == world.provider_a.public_id
    assert event.actor_name == "Provider A"
    assert event.credential_id is not None
    assert event.credential_id.startswith("ffp_")
    assert world.key_a.startswith(event.credential_id)
    assert event.auth_method == "api_key"
    assert event.owner_id == world.provider_a.public_id
    assert event.chain == f"provider:{world.provider_a.public_id}"
    assert event.user_agent == "partner-sdk/1.2"
    assert event.client_address == "127.0.0.1"
    assert event.schema_version == 1
    assert event.event_id.startswith("evt_")
    assert event.occurred_at.tzinfo is not None


def test_tenant_read_records_target(client: Any, world: World) -> None:
    tenant_id = world.tenant_a.public_id
    event = only_event(client.get(f"{TENANTS}/{tenant_id}", headers=bearer(world.key_a)))
    assert event.action == "tenant.read"
    assert event.target_type == "tenant"
    assert event.target_id == tenant_id
    assert event.outcome == "success"


def test_foreign_tenant_is_denied_like_missing(client: Any, world: World) -> None:
    foreign = only_event(client.get(f"{TENANTS}/{world.tenant_b.public_id}", headers=bearer(world.key_a)))
    missing = only_event(client.get(f"{TENANTS}/ten_missing", headers=bearer(world.key_a)))
    for event in (foreign, missing):
        assert event.outcome == "denied"
        assert event.http_status == 404
        assert event.error_code == "not_found"
        assert event.chain == f"provider:{world.provider_a.public_id}"
    assert foreign.target_id == world.tenant_b.public_id


def test_unauthenticated_goes_to_anonymous_chain(client: Any, world: World) -> None:
    event = only_event(client.get(TENANTS))
    assert event.outcome == "denied"
    assert event.http_status == 401
    assert event.error_code == "unauthorized"
    assert event.chain == "anonymous"
    assert event.actor_type == "anonymous"
    assert event.actor_id is None
    assert event.owner_id is None
    assert event.action == "tenant.list"


def test_wrong_audience_key_is_anonymous(client: Any, world: World) -> None:
    event = only_event(client.get(DIAGNOSTICS, headers=bearer(world.key_a)))
    assert event.outcome == "denied"
    assert event.chain == "anonymous"
    assert event.action == "diagnostics.read"


def test_forbidden_goes_to_callers_chain(client: Any, world: World) -> None:
    event = only_event(client.get(TENANTS, headers=bearer(world.key_a_no_tenants)))
    assert event.outcome == "denied"
    assert event.http_status == 403
    assert event.error_code == "forbidden"
    assert event.actor_id == world.provider_a.public_id
    assert event.chain == f"provider:{world.provider_a.public_id}"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [("limit=0", 422, "validation_error"), ("cursor=forged", 400, "invalid_cursor")],
)
def test_view_errors_recorded_once(client: Any, world: World, query: str, status: int, code: str) -> None:
    response = client.get(f"{TENANTS}?{query}", headers=bearer(world.key_a))
    assert response.status_code == status
    event = only_event(response)
    assert event.outcome == "error"
    assert event.http_status == status
    assert event.error_code == code
    assert event.result_count is None


def test_unexpected_error_recorded(app: Flask, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask_federation.services import tenants

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(tenants, "list_tenants", explode)
    response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 500
    event = only_event(response)
    assert event.outcome == "error"
    assert event.error_code == "internal_error"


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/federation/nope", 404), ("DELETE", TENANTS, 405)])
def test_unmatched_requests_recorded(client: Any, method: str, path: str, status: int) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    event = only_event(response)
    assert event.action == "request.unmatched"
    assert event.outcome == "error"
    assert event.chain == "anonymous"


def test_api_view_without_with_audit_recorded(app: Flask, world: World) -> None:
    @with_provider_auth("tenants:read")
    def extra() -> Any:
        return jsonify(ok=True)

    app.add_url_rule("/federation/provider/v1/extra", endpoint="federation_provider.extra", view_func=extra)
    client = app.test_client()
    assert only_event(client.get("/federation/provider/v1/extra", headers=bearer(world.key_a))).action == (
        "route.federation_provider.extra"
    )
    assert only_event(client.get("/federation/provider/v1/extra")).outcome == "denied"


def test_openapi_document_not_recorded(client: Any) -> None:
    before = len(all_events())
    assert client.get("/federation/openapi.json").status_code == 200
    assert len(all_events()) == before


def test_diagnostics_recorded(client: Any, world: World) -> None:
    event = only_event(client.get(DIAGNOSTICS, headers=bearer(world.key_dev)))
    assert event.action == "diagnostics.read"
    assert event.chain == f"developer:{world.developer.public_id}"
    assert event.target_id == world.developer.public_id


def test_request_id_links_event(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers={**bearer(world.key_a), "X-Request-ID": "trace-42"})
    assert only_event(response).request_id == "trace-42"


def test_disabled_audit_records_nothing(make_app: Any) -> None:
    app = make_app(FEDERATION_AUDIT_ENABLED=False)
    with app.app_context():
        world = World()
        assert app.test_client().get(TENANTS, headers=bearer(world.key_a)).status_code == 200
        assert app.test_client().get(TENANTS).status_code == 401
        assert all_events() == []


def test_disabled_api_records_nothing(make_app: Any) -> None:
    app = make_app(FEDERATION_ENABLED=False)
    with app.app_context():
        assert app.test_client().get(TENANTS).status_code == 404
        assert all_events() == []


def _guard_route(app: Flask, error: Exception, *, audited: bool) -> None:
    """Add a host route whose second guard always denies with ``error``, as rate limiting and idempotency do."""

    def deny() -> None:
        raise error

    def view() -> Any:
        denial = run_guard(deny)
        return denial if denial is not None else jsonify(ok=True)

    guarded = with_provider_auth("tenants:read")(view)
    if audited:
        guarded = with_audit("report.create", kind="write")(guarded)
    app.add_url_rule(f"/host/{'audited' if audited else 'plain'}", "guarded_" + str(audited), guarded)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TooManyRequests(headers={"Retry-After": "3"}), "rate_limited"),
        (Conflict("Idempotency key in use."), "conflict"),
    ],
)
def test_guard_denial_recorded_once(app: Flask, world: World, error: Exception, code: str) -> None:
    _guard_route(app, error, audited=True)
    response = app.test_client().get("/host/audited", headers=bearer(world.key_a))
    event = only_event(response)
    assert event.outcome == "denied"
    assert event.error_code == code
    assert event.http_status == response.status_code
    assert event.action == "report.create"
    assert event.kind == "write"
    assert event.chain == f"provider:{world.provider_a.public_id}"


def test_host_denial_without_with_audit(app: Flask, world: World) -> None:
    _guard_route(app, TooManyRequests(), audited=False)
    event = only_event(app.test_client().get("/host/plain", headers=bearer(world.key_a)))
    assert event.action == "host.guarded_False"
    assert event.outcome == "denied"


def test_unaudited_host_route_success_not_recorded(app: Flask, world: World) -> None:
    @app.get("/host/free")
    @with_provider_auth("tenants:read")
    def free() -> Any:
        return jsonify(ok=True)

    before = len(all_events())
    assert app.test_client().get("/host/free", headers=bearer(world.key_a)).status_code == 200
    assert len(all_events()) == before


def test_host_route_with_audit_and_annotate(app: Flask, world: World) -> None:
    @app.get("/host/reports/<report_id>")
    @with_audit("report.read", target_type="report", target_id_arg="report_id")
    @with_provider_auth("tenants:read")
    def report(report_id: str) -> Any:
        annotate(result_count=3)
        return jsonify(id=report_id)

    event = only_event(app.test_client().get("/host/reports/r-1", headers=bearer(world.key_a)))
    assert (event.action, event.target_type, event.target_id) == ("report.read", "report", "r-1")
    assert event.result_count == 3
    assert event.outcome == "success"


def test_host_route_recording_itself_keeps_its_event(app: Flask, world: World) -> None:
    @app.post("/host/notes")
    @with_audit("note.create", kind="write")
    @with_provider_auth("tenants:write")
    def create_note() -> Any:
        record("note.create", kind="write", target_type="note", target_id="n-1", http_status=201)
        return jsonify(ok=True), 201

    event = only_event(app.test_client().post("/host/notes", headers=bearer(world.key_a)))
    assert event.target_id == "n-1"
    assert event.http_status == 201


def test_host_route_exception_recorded(app: Flask, world: World) -> None:
    @app.errorhandler(KeyError)
    def handle(error: Exception) -> Any:
        return jsonify(error="host"), 500

    @app.get("/host/broken")
    @with_audit("broken.read")
    def broken() -> Any:
        raise KeyError("nope")

    event = only_event(app.test_client().get("/host/broken"))
    assert event.outcome == "error"
    assert event.http_status == 500
    assert event.error_code == "internal_error"


def test_signal_carries_committed_event(client: Any, world: World, received: list[dict[str, Any]]) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_a))
    stored = only_event(response)
    assert len(received) == 1
    sent = received[0]
    assert sent["event_id"] == stored.event_id
    assert sent["hash"] == stored.hash
    assert sent["action"] == "tenant.list"
    assert sent["occurred_at"].endswith("+00:00")


def test_failing_receiver_keeps_response(
    client: Any, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Flask, event: dict[str, Any]) -> None:
        raise RuntimeError("forwarder down")

    signals.audit_event_recorded.connect(broken)
    try:
        response = client.get(TENANTS, headers=bearer(world.key_a))
    finally:
        signals.audit_event_recorded.disconnect(broken)
    assert response.status_code == 200
    assert only_event(response).outcome == "success"
    assert "audit_event_recorded failed" in caplog.text


def test_failed_audit_keeps_denial(
    app: Flask, world: World, received: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    with failing_audit_inserts(app):
        unauthorized = app.test_client().get(TENANTS)
        forbidden = app.test_client().get(TENANTS, headers=bearer(world.key_a_no_tenants))
    assert unauthorized.status_code == 401
    assert unauthorized.json["error"]["code"] == "unauthorized"
    assert forbidden.status_code == 403
    assert "Failed to record the audit event of tenant.list" in caplog.text
    assert any(record.exc_info for record in caplog.records)
    assert received == []


def test_failed_audit_fails_success_closed(app: Flask, world: World) -> None:
    with failing_audit_inserts(app):
        response = app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "items" not in response.get_data(as_text=True)
