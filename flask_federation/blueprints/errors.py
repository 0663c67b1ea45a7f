"""Error handlers of the federation blueprints: every error becomes an envelope."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, default_exceptions

from ..audit.hooks import note_error
from ..database_errors import OUTAGE_LOG, database_unavailable, is_database_unavailable
from ..envelope import error_response
from ..errors import FederationError, InternalError, from_http_exception
from ..request_id import get_request_id
from ..state import get_state

logger = logging.getLogger("flask_federation")


def _handle_federation_error(error: FederationError) -> Response:
    note_error(error)
    # Roll back now rather than at teardown: an error response commits nothing, and an open
    # write transaction would hold its locks until then (on SQLite, a lock on the whole database).
    get_state().session.rollback()
    if error.status_code >= 500:
        logger.error(
            "Federation error %s on %s %s (request id %s)",
            error.error_code,
            request.method,
            request.path,
            get_request_id(),
        )
    return error_response(error)


def _handle_http_exception(error: HTTPException) -> Response:
    # Flask prefers handlers registered by status code, so most federation errors arrive here.
    return _handle_federation_error(from_http_exception(error))


def _handle_unexpected(error: Exception) -> Response:
    # Roll back first: a half-done write must not be committed by a later request on this session.
    get_state().session.rollback()
    if isinstance(error, SQLAlchemyError) and is_database_unavailable(error):
        OUTAGE_LOG.failed(error)
        unavailable = database_unavailable()
        note_error(unavailable)
        return error_response(unavailable)

    logger.exception("Unhandled error on %s %s (request id %s)", request.method, request.path, get_request_id())
    internal_error = InternalError()
    note_error(internal_error)
    return error_response(internal_error)


def install_error_handlers(blueprint: Blueprint) -> None:
    """Register handlers on ``blueprint`` for every error class the app might also handle.

    Flask looks handlers up class by class along the exception's MRO, asking the
    blueprint before the app for each class. Registering the werkzeug classes one by
    one means a host's app-level handler for, say, 404 never renders a federation error.
    """
    blueprint.register_error_handler(FederationError, _handle_federation_error)
    for status in default_exceptions:
        blueprint.register_error_handler(status, _handle_http_exception)

    blueprint.register_error_handler(HTTPException, _handle_http_exception)
    blueprint.register_error_handler(Exception, _handle_unexpected)
