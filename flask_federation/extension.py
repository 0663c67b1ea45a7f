"""The :class:`Federation` extension: wiring into a Flask app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from flask_sqlalchemy import SQLAlchemy
from werkzeug.routing import RequestRedirect

from .blueprints import register_blueprints
from .config import ConfigurationError, load_settings
from .context import request_state
from .envelope import error_response
from .errors import FederationDisabled, from_http_exception
from .idempotency import COMPONENT as IDEMPOTENCY_COMPONENT
from .idempotency import build_store as build_idempotency_store
from .idempotency.side_effects import track_database_writes
from .models import metadata
from .request_id import HEADER as REQUEST_ID_HEADER
from .request_id import get_request_id
from .state import EXTENSION_KEY, FederationState

logger = logging.getLogger("flask_federation")


class Federation:
    """The federation API extension.

    ``db`` is the host's Flask-SQLAlchemy instance. Without one the extension reuses
    the app's registered Flask-SQLAlchemy, or sets one up from
    ``SQLALCHEMY_DATABASE_URI``. ``config`` holds ``FEDERATION_*`` values that
    override ``app.config``. The extension keeps no reference to any app: per-app
    state lives in ``app.extensions["federation"]``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        db: SQLAlchemy | None = None,
        *,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._db = db
        self._config = dict(config or {})
        if app is not None:
            self.init_app(app, db)

    def init_app(self, app: Flask, db: SQLAlchemy | None = None) -> None:
        """Validate the settings, register the routes and hooks, and start the stores."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"flask-federation is already initialised on app {app.name!r}. "
                "Call init_app once per app: create the Federation object once and reuse it."
            )

        try:
            settings = load_settings(app.config, self._config)
        except ConfigurationError as error:
            logger.error("Invalid flask-federation configuration: %s", error)
            raise

        state = FederationState(settings=settings, db=self._resolve_db(app, db or self._db))
        app.extensions[EXTENSION_KEY] = state
        state.components[IDEMPOTENCY_COMPONENT] = build_idempotency_store(settings, state.db)
        track_database_writes(state.db)
        register_blueprints(app, settings.url_prefix)
        app.before_request(_before_request)
        app.after_request(_after_request)
        if settings.create_tables:
            with app.app_context():
                metadata.create_all(state.db.engine)

        logger.info(
            "flask-federation initialised on app %r (enabled=%s, prefix=%s, idempotency store=%s)",
            app.name,
            settings.enabled,
            settings.url_prefix,
            state.components[IDEMPOTENCY_COMPONENT].name,
        )

    @staticmethod
    def _resolve_db(app: Flask, db: SQLAlchemy | None) -> SQLAlchemy:
        if db is not None:
            return db

        registered = app.extensions.get("sqlalchemy")
        if isinstance(registered, SQLAlchemy):
            return registered

        if not app.config.get("SQLALCHEMY_DATABASE_URI") and not app.config.get("SQLALCHEMY_BINDS"):
            raise ConfigurationError(
                "SQLALCHEMY_DATABASE_URI is not set. Set it, or pass your Flask-SQLAlchemy "
                "instance as Federation(app, db=db)."
            )

        own = SQLAlchemy()
        own.init_app(app)
        return own


def _under_prefix(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _before_request() -> Response | None:
    """Answer disabled-API requests and unmatched federation paths with the envelope.

    Routing errors (404, 405) are raised before any blueprint is known, so blueprint
    error handlers never see them; answering here keeps the host's handlers out.
    """
    from .state import get_state

    settings = get_state().settings
    if not _under_prefix(request.path, settings.url_prefix):
        return None

    get_request_id()
    if not settings.enabled:
        return error_response(FederationDisabled())

    routing_error = request.routing_exception
    if routing_error is not None and not isinstance(routing_error, RequestRedirect):
        return error_response(from_http_exception(routing_error))

    return None


def _after_request(response: Response) -> Response:
    request_id = request_state().get("request_id")
    if request_id is not None and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id

    return response
