"""The :class:`Federation` extension: wiring into a Flask app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import RequestRedirect

from .audit import hooks as audit_hooks
from .auth.credential_cache import COMPONENT as CREDENTIAL_CACHE_COMPONENT
from .auth.credential_cache import build_credential_cache
from .auth.oidc_component import build_oidc_component
from .auth.oidc_session import apply_session_cookie_defaults, check_session_available
from .auth.usage import COMPONENT as USAGE_COMPONENT
from .auth.usage import build_usage_counter
from .blueprints import register_blueprints, register_oidc_blueprint
from .config import ConfigurationError, load_settings
from .context import request_state
from .database_errors import OUTAGE_LOG as DATABASE_OUTAGE_LOG
from .database_errors import note_request_finished
from .envelope import error_response
from .errors import FederationDisabled, FederationError, NotFound, from_http_exception
from .idempotency import COMPONENT as IDEMPOTENCY_COMPONENT
from .idempotency import build_store as build_idempotency_store
from .models import metadata
from .ratelimit.decorator import validate_routes
from .ratelimit.headers import apply_fields as apply_rate_limit_fields
from .ratelimit.install import install_rate_limits
from .request_id import HEADER as REQUEST_ID_HEADER
from .request_id import get_request_id
from .state import EXTENSION_KEY, FederationState
from .statements import track_statements

logger = logging.getLogger("flask_federation")


class Federation:
    """The federation API extension.

    ``db`` is the host's Flask-SQLAlchemy instance. Without one the extension reuses
    the app's registered Flask-SQLAlchemy, or sets one up from
    ``SQLALCHEMY_DATABASE_URI``. ``config`` holds ``FEDERATION_*`` values that
    override ``app.config``. ``limiter`` is the host's Flask-Limiter ``Limiter``,
    already initialised on the app, whose storage the rate limits then share;
    without one the extension creates its own from ``FEDERATION_RATELIMIT_*``. The
    extension keeps no reference to any app: per-app state lives in
    ``app.extensions["federation"]``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        db: SQLAlchemy | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self._db = db
        self._config = dict(config or {})
        self._limiter = limiter
        if app is not None:
            self.init_app(app, db)

    def init_app(self, app: Flask, db: SQLAlchemy | None = None, *, limiter: Limiter | None = None) -> None:
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

        if settings.oidc_login_enabled:
            check_session_available(app)

        state = FederationState(settings=settings, db=self._resolve_db(app, db or self._db))
        rate_limits = install_rate_limits(app, state, limiter or self._limiter)
        app.extensions[EXTENSION_KEY] = state
        state.components[USAGE_COMPONENT] = build_usage_counter(settings)
        credential_cache = build_credential_cache(settings)
        if credential_cache is not None:
            state.components[CREDENTIAL_CACHE_COMPONENT] = credential_cache

        oidc = build_oidc_component(app, settings)
        if oidc is not None:
            state.components["oidc"] = oidc

        state.components[IDEMPOTENCY_COMPONENT] = build_idempotency_store(settings, state.db)
        track_statements(state.db)
        register_blueprints(app, settings.url_prefix)
        if settings.oidc_login_enabled:
            register_oidc_blueprint(app, settings.url_prefix)
            apply_session_cookie_defaults(app)

        validate_routes(app, rate_limits)
        app.before_request(_before_request)
        app.after_request(_after_request)
        # Registered after Flask-SQLAlchemy's own teardown, so it runs first: Flask runs them in reverse.
        app.teardown_appcontext(_close_session)
        audit_hooks.install(app)
        if settings.create_tables:
            with app.app_context():
                metadata.create_all(state.db.engine)

        logger.info(
            "flask-federation initialised on app %r (enabled=%s, prefix=%s, legacy_auth=%s, oidc=%s, oidc_login=%s, "
            "idempotency store=%s)",
            app.name,
            settings.enabled,
            settings.url_prefix,
            settings.legacy_auth_enabled,
            settings.oidc_enabled,
            settings.oidc_login_enabled,
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


def _routing_error(prefix: str) -> FederationError | None:
    """Return the federation error of the request's routing failure, or None when routing succeeded."""
    routing_error = request.routing_exception
    routes = f"The routes are listed in {prefix}/openapi.json."
    if isinstance(routing_error, RequestRedirect):
        if "//" not in request.path:
            return None

        # Werkzeug would respond with a 308 to the merged path and an HTML body, outside the envelope.
        return NotFound(f"No federation route matches this path as sent. Send it without repeated slashes. {routes}")

    if routing_error is None:
        return None

    error = from_http_exception(routing_error)
    if error.error_code == NotFound.error_code:
        return NotFound(f"No federation route matches this path. {routes}")

    return error


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

    routing_error = _routing_error(settings.url_prefix)
    if routing_error is not None:
        audit_hooks.note_error(routing_error)
        return error_response(routing_error)

    if request.method == "OPTIONS" and getattr(request.url_rule, "provide_automatic_options", False):
        # Flask's automatic response is 200 with an empty text/html body, so 204 states plainly that there is none.
        response = current_app.make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response

    return None


def _after_request(response: Response) -> Response:
    note_request_finished(response.status_code)

    request_id = request_state().get("request_id")
    if request_id is not None and REQUEST_ID_HEADER not in response.headers:
        response.headers[REQUEST_ID_HEADER] = request_id

    return apply_rate_limit_fields(response)


def _close_session(exception: BaseException | None) -> None:
    """Close the request's session, surviving a connection that the database closed under it.

    Closing rolls back, which raises when the database restarted while the session
    held a connection. Flask-SQLAlchemy's own teardown would let that error escape
    the app, and the server would send its HTML 500 in place of the response the
    view built. The connection is invalidated by then, so dropping the session is safe.
    """
    from .state import get_state

    session = get_state().db.session
    try:
        session.remove()
    except SQLAlchemyError as error:
        DATABASE_OUTAGE_LOG.failed(error)
        session.registry.clear()
