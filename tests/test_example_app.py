"""The example host app's own routes, which docs/federation/integration.md shows: every guard on a host route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from examples.host_app.app import Announcement, create_app, db
from flask_federation import admin
from flask_federation.models import AuditEvent, metadata

from .conftest import bearer, close_components

ANNOUNCEMENTS = "/partner/announcements"


@pytest.fixture
def example_app(database_url: str) -> Iterator[Flask]:
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})
    with app.app_context():
        metadata.drop_all(db.engine)
        db.drop_all()
        metadata.create_all(db.engine)
        db.create_all()
        yield app
        close_components(app)
        metadata.drop_all(db.engine)
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def keys(example_app: Flask) -> dict[str, str]:
    provider = admin.create_provider("Announcer")
    return {
        "write": admin.issue_key(provider.public_id, ["tenants:read", "tenants:write"]).key,
        "read": admin.issue_key(provider.public_id, ["tenants:read"]).key,
    }


def _create(app: Flask, key: str, idempotency_key: str | None, text: str = "Hello") -> TestResponse:
    headers = bearer(key)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return app.test_client().post(ANNOUNCEMENTS, json={"text": text}, headers=headers)


def _announcement_count() -> int:
    return int(db.session.execute(select(func.count()).select_from(Announcement)).scalar_one())


def test_create_announcement_once_per_key(example_app: Flask, keys: dict[str, str]) -> None:
    first = _create(example_app, keys["write"], "announce-1")
    retry = _create(example_app, keys["write"], "announce-1")

    assert first.status_code == 201
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    assert _announcement_count() == 1


def test_create_announcement_records_event(example_app: Flask, keys: dict[str, str]) -> None:
    created = _create(example_app, keys["write"], "announce-2", text="Maintenance")
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "announcement.create")).scalar_one()

    assert event.outcome == "success"
    assert event.kind == "write"
    assert event.target_id == str(created.json["id"])
    assert event.changes == {"before": None, "after": {"text": "Maintenance"}}


def test_create_announcement_guards(example_app: Flask, keys: dict[str, str]) -> None:
    missing_key = _create(example_app, keys["write"], None)
    read_only = _create(example_app, keys["read"], "announce-3")
    anonymous = example_app.test_client().post(ANNOUNCEMENTS, json={"text": "x"}, headers={"Idempotency-Key": "a"})

    assert missing_key.status_code == 400
    assert missing_key.json["error"]["code"] == "idempotency_key_missing"
    assert read_only.status_code == 403
    assert anonymous.status_code == 401
    assert _announcement_count() == 0
    events = db.session.execute(
        select(AuditEvent.http_status, AuditEvent.outcome).where(AuditEvent.action == "announcement.create")
    ).all()
    assert sorted(tuple(event) for event in events) == [(400, "denied"), (401, "denied"), (403, "denied")]


def test_create_announcement_rate_limited(example_app: Flask, keys: dict[str, str]) -> None:
    statuses = [_create(example_app, keys["write"], f"announce-{number}").status_code for number in range(31)]

    assert statuses.count(201) == 30
    assert statuses[-1] == 429


def test_list_announcements_needs_provider_key(example_app: Flask, keys: dict[str, str]) -> None:
    _create(example_app, keys["write"], "announce-4", text="Listed")
    listing = example_app.test_client().get(ANNOUNCEMENTS, headers=bearer(keys["read"]))
    anonymous = example_app.test_client().get(ANNOUNCEMENTS)

    assert listing.status_code == 200
    assert listing.json["announcements"] == ["Listed"]
    assert anonymous.status_code == 401
