"""An example host app: its own model and routes, with the federation API mounted.

Run it with ``bash examples/run-demo.sh`` from the repository root.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_federation import (
    Federation,
    current_principal,
    record,
    with_audit,
    with_idempotency_required,
    with_provider_auth,
    with_rate_limit,
)
from flask_federation.audit import changes_between
from flask_federation.config import SETTINGS
from flask_federation.transaction import transaction


class HostBase(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=HostBase)
federation = Federation()


class Announcement(db.Model):  # type: ignore[name-defined, misc]
    """The host's own table, beside the federation tables in the same database."""

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(500))


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "demo-only-secret-change-me"),
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///federation-demo.db"),
        FEDERATION_ENABLED=True,
    )
    # FEDERATION_* setting keys in the environment override the defaults above; the extension parses their strings.
    # Other FEDERATION_* variables (test URLs, smoke-test keys) are not settings, and the extension rejects unknown keys.
    setting_keys = {setting.key for setting in SETTINGS}
    app.config.update({key: value for key, value in os.environ.items() if key in setting_keys})
    app.config.update(config or {})
    db.init_app(app)
    federation.init_app(app, db)

    @app.get("/")
    def index() -> Any:
        return jsonify(service="example host app", federation_api="/federation/openapi.json")

    @app.get("/partner/announcements")
    @with_rate_limit()
    @with_provider_auth("tenants:read")
    def partner_announcements() -> Any:
        """Return the announcements, behind the federation's provider auth and provider rate limit."""
        texts = db.session.execute(select(Announcement.text).order_by(Announcement.id)).scalars().all()
        return jsonify(provider=current_principal.subject_id, announcements=list(texts))

    @app.post("/partner/announcements")
    @with_audit("announcement.create", kind="write", target_type="announcement")
    @with_rate_limit("30/minute")
    @with_provider_auth("tenants:write")
    @with_idempotency_required
    def create_announcement() -> Any:
        """Add an announcement once per Idempotency-Key; the write and its audit event commit together."""
        text = str((request.get_json(silent=True) or {}).get("text", "")).strip()
        if not text or len(text) > 500:
            return jsonify(error="Send a JSON object with 'text', 1 to 500 characters."), 422

        with transaction():
            announcement = Announcement(text=text)
            db.session.add(announcement)
            db.session.flush()
            announcement_id = announcement.id
            record(
                "announcement.create",
                kind="write",
                target_type="announcement",
                target_id=str(announcement_id),
                http_status=201,
                changes=changes_between(None, {"text": text}),
            )

        return jsonify(id=announcement_id, text=text), 201

    @app.cli.command("init-host-db")
    def init_host_db() -> None:
        """Create the host's own tables and a sample announcement."""
        db.create_all()
        if db.session.execute(select(Announcement)).first() is None:
            db.session.add(Announcement(text="Maintenance window on Sunday 02:00 UTC."))
            db.session.commit()

    return app
