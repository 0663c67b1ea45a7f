"""Per-app state of the extension, kept in ``app.extensions["federation"]``."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from .config import FederationSettings

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

EXTENSION_KEY = "federation"


@dataclasses.dataclass
class FederationState:
    """Everything the extension built for one app in ``init_app``."""

    settings: FederationSettings
    db: SQLAlchemy
    #: Feature components (limiter, idempotency store, audit writer, OIDC) keyed by name.
    components: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def session(self) -> Session:
        return self.db.session  # type: ignore[return-value]


def is_in_memory_sqlite(url: URL) -> bool:
    """Return whether ``url`` names an in-memory SQLite database, which exists only on its one connection."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def get_state(app: Flask | None = None) -> FederationState:
    """Return the federation state of ``app`` (default: the current app), or raise naming the fix."""
    target = app if app is not None else current_app
    state = target.extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError(
            "flask-federation is not initialised on this app. Call Federation(app) or federation.init_app(app) first."
        )

    assert isinstance(state, FederationState)
    return state
