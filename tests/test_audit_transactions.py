"""A write and its audit event commit together: no change without its event, no event without its change."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, jsonify
from sqlalchemy import func, select

from flask_federation import admin, record, with_audit, with_provider_auth
from flask_federation.audit import acting_as, changes_between
from flask_federation.errors import ValidationFailed
from flask_federation.models import Credential, Provider, Tenant
from flask_federation.state import get_state
from flask_federation.transaction import transaction

from .audit_support import all_events, failing_audit_inserts, only_event
from .conftest import World, bearer


def _count(model: Any) -> int:
    session = get_state().session
    session.rollback()
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.fixture
def failing_audit(app: Flask) -> Iterator[None]:
    with failing_audit_inserts(app):
        yield


def test_issue_key_records_event(app: Flask, world: World) -> None:
    issued = admin.issue_key(world.provider_a.public_id, ["tenants:read"], label="ci")
    event = all_events()[-1]
    assert event.action == "key.issue"
    assert event.kind == "write"
    assert event.actor_type == "system"
    assert event.actor_id == "admin_api"
    assert event.target_type == "api_key"
    assert event.target_id == issued.credential.key_id
    assert event.chain == f"provider:{world.provider_a.public_id}"
    assert event.changes["before"] is None
    assert event.changes["after"]["entitlements"] == ["tenants:read"]
    assert event.changes["after"]["label"] == "ci"


@pytest.mark.parametrize(
    "write",
    [
        lambda world: admin.issue_key(world.provider_a.public_id, ["tenants:read"]),
        lambda world: admin.create_tenant(world.provider_a.public_id, name="T", slug="t-new", region="eu-west-1"),
        lambda world: admin.create_provider("Never"),
        lambda world: admin.create_developer("Never"),
    ],
    ids=["issue_key", "create_tenant", "create_provider", "create_developer"],
)
def test_failed_audit_rolls_back_creation(
    app: Flask, world: World, failing_audit: None, write: Callable[[World], Any]
) -> None:
    counts = {model: _count(model) for model in (Credential, Tenant, Provider)}
    events = len(all_events())
    with pytest.raises(Exception, match="injected audit failure"):
        write(world)
    assert {model: _count(model) for model in counts} == counts
    assert len(all_events()) == events


def test_failed_audit_rolls_back_revocation(app: Flask, world: World, failing_audit: None) -> None:
    key_id = admin.list_keys(world.provider_a.public_id)[0].key_id
    with pytest.raises(Exception, match="injected audit failure"):
        admin.revoke_key(key_id)
    get_state().session.rollback()
    assert admin.list_keys(world.provider_a.public_id)[0].revoked_at is None


def test_failed_audit_rolls_back_entitlement_change(app: Flask, world: World, failing_audit: None) -> None:
    credential = admin.list_keys(world.provider_a.public_id)[0]
    before = list(credential.entitlements)
    with pytest.raises(Exception, match="injected audit failure"):
        admin.set_key_entitlements(credential.key_id, ["tenants:read"])
    get_state().session.rollback()
    assert admin.list_keys(world.provider_a.public_id)[0].entitlements == before


def test_revoke_and_entitlement_change_recorded(app: Flask, world: World) -> None:
    key_id = admin.list_keys(world.provider_a.public_id)[0].key_id
    admin.set_key_entitlements(key_id, ["tenants:read"])
    admin.revoke_key(key_id)
    admin.revoke_key(key_id)
    update, revoke, repeat = all_events()[-3:]
    assert update.action == "key.update"
    assert update.changes["before"] == {"entitlements": ["audit:read", "tenants:read", "tenants:write"]}
    assert update.changes["after"] == {"entitlements": ["tenants:read"]}
    assert revoke.action == "key.revoke"
    assert revoke.changes["before"] == {"revoked_at": None}
    assert revoke.changes["after"]["revoked_at"].endswith("+00:00")
    assert repeat.action == "key.revoke"
    assert repeat.changes is None


def test_changed_entitlements_apply_to_next_request(client: Any, world: World) -> None:
    key_id = next(key.key_id for key in admin.list_keys(world.provider_a.public_id) if world.key_a.startswith(key.key_id))
    admin.set_key_entitlements(key_id, ["audit:read"])
    assert client.get("/federation/provider/v1/tenants", headers=bearer(world.key_a)).status_code == 403


def test_unknown_entitlement_rejected_on_change(app: Flask, world: World) -> None:
    key_id = admin.list_keys(world.provider_a.public_id)[0].key_id
    with pytest.raises(ValidationFailed, match="diagnostics:read"):
        admin.set_key_entitlements(key_id, ["diagnostics:read"])


def test_acting_as_names_the_actor(app: Flask, world: World) -> None:
    with acting_as("staff:42", "Jane Doe"):
        admin.create_provider("Acted")
    event = all_events()[-1]
    assert (event.actor_type, event.actor_id, event.actor_name) == ("system", "staff:42", "Jane Doe")
    admin.create_provider("After")
    assert all_events()[-1].actor_id == "admin_api"


def test_deleting_actor_keeps_history(app: Flask, world: World) -> None:
    provider_id = world.provider_b.public_id
    session = get_state().session
    session.delete(session.get(Provider, world.provider_b.id))
    session.commit()
    history = [event for event in all_events() if event.owner_id == provider_id]
    assert {event.action for event in history} >= {"provider.create", "key.issue", "tenant.create"}
    assert next(event for event in history if event.action == "provider.create").actor_name is None
    assert history[0].changes["after"]["name"] == "Provider B"


def test_signal_waits_for_commit(app: Flask, world: World, received: list[dict[str, Any]]) -> None:
    session = get_state().session
    record("manual.write", kind="write")
    assert received == []
    session.commit()
    assert [event["action"] for event in received] == ["manual.write"]

    record("manual.discarded", kind="write")
    session.rollback()
    session.commit()
    assert [event["action"] for event in received] == ["manual.write"]


def test_savepoint_release_does_not_signal(app: Flask, world: World, received: list[dict[str, Any]]) -> None:
    session = get_state().session
    record("manual.outer", kind="write")
    with session.begin_nested():
        record("manual.inner", kind="write")
    assert received == []
    session.commit()
    assert [event["action"] for event in received] == ["manual.outer", "manual.inner"]


def _write_route(app: Flask, *, fail_after_record: bool) -> None:
    """A host write route that does what a federation write service does: change, record, commit."""

    @app.post("/host/tenants")
    @with_audit("tenant.create", kind="write", target_type="tenant")
    @with_provider_auth("tenants:write")
    def create() -> Any:
        with transaction():
            tenant = admin.add_tenant(
                admin.get_provider(app.config["OWNER"]), {"name": "Route", "slug": "route", "region": "eu-west-1"}
            )
            record(
                "tenant.create",
                kind="write",
                target_type="tenant",
                target_id=tenant.public_id,
                http_status=201,
                changes=changes_between(None, {"slug": tenant.slug, "metadata": {"password": "hunter2"}}),
            )
            if fail_after_record:
                raise ValidationFailed("fails after the event was added")
        return jsonify(id=tenant.public_id), 201


def test_write_route_commits_change_with_event(app: Flask, world: World) -> None:
    app.config["OWNER"] = world.provider_a.public_id
    _write_route(app, fail_after_record=False)
    response = app.test_client().post("/host/tenants", headers=bearer(world.key_a))
    assert response.status_code == 201
    event = only_event(response)
    assert event.target_id == response.json["id"]
    assert event.http_status == 201
    assert event.changes["after"]["metadata"]["password"] == "[REDACTED]"


def test_write_route_failure_keeps_only_error_event(app: Flask, world: World) -> None:
    app.config["OWNER"] = world.provider_a.public_id
    app.config["PROPAGATE_EXCEPTIONS"] = False
    _write_route(app, fail_after_record=True)
    tenants = _count(Tenant)

    @app.errorhandler(ValidationFailed)
    def handle(error: ValidationFailed) -> Any:
        return jsonify(error=error.error_code), 422

    response = app.test_client().post("/host/tenants", headers=bearer(world.key_a))
    assert response.status_code == 422
    assert _count(Tenant) == tenants
    event = only_event(response)
    assert event.outcome == "error"
    assert event.error_code == "validation_error"
    assert event.target_id is None
