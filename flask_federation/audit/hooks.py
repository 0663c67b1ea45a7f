"""Request hooks: collect a request's denial or error, and record its one event after the response is built.

Denials arrive through the ``request_denied`` signal, because every guard
renders its denial through ``guard.run_guard``. Errors arrive through the
federation blueprints' error handlers. Both only note the error here. The ``after_request``
hook then records exactly one event per audited request, so a request that is
denied, fails and is handled by several layers still yields one event.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import signals
from ..database_errors import OUTAGE_LOG, database_unavailable, is_database_unavailable
from ..envelope import error_response
from ..errors import FederationError, InternalError
from ..request_id import get_request_id
from ..state import EXTENSION_KEY, get_state
from .batch import current_batch
from .batch import install as install_batch
from .context import COMMITTED, PENDING, RequestAudit, current_request_audit
from .writer import EventDetails, audit_settings, build_event, install_settings, record

logger = logging.getLogger("flask_federation.audit")

#: Action of a request under the federation prefix that matched no route (404 or 405).
UNMATCHED_ACTION = "request.unmatched"

#: Statuses recorded as ``denied`` rather than ``error``. A 404 from a matched route is a
#: denial too, because a tenant of another provider gets the same 404 as a missing one.
_DENIAL_STATUSES = frozenset({401, 403, 429})

# A concurrent writer can only collide on (chain, sequence) if the head lock was bypassed; retry then.
_ATTEMPTS = 3


def install(app: Flask) -> None:
    """Build the app's audit settings and register the hook that records each request's event."""
    install_settings(app)
    install_batch(app)
    app.after_request(record_request_event)


def note_error(error: FederationError, *, denied_by_guard: bool = False) -> None:
    """Remember the error that the current request's response carries, for its audit event."""
    audit = current_request_audit(create=True)
    if audit is None:
        return

    audit.error = error
    audit.denied_by_guard = audit.denied_by_guard or denied_by_guard


def _on_request_denied(sender: Flask, error: FederationError, **extra: Any) -> None:
    if EXTENSION_KEY in sender.extensions:
        note_error(error, denied_by_guard=True)


signals.request_denied.connect(_on_request_denied)


def _under_prefix(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _request_action(audit: RequestAudit | None) -> str | None:
    """Return the action of the current request, or None when the request is not audited."""
    if audit is not None and audit.action is not None:
        return audit.action

    if request.method == "OPTIONS":
        return None

    settings = get_state().settings
    if _under_prefix(request.path, settings.url_prefix):
        # Imported here because the blueprints import this module for their error handlers.
        from ..blueprints import API_BLUEPRINTS

        if not settings.enabled:
            return None  # The API is off, and its tables may not exist.

        if request.url_rule is None:
            return UNMATCHED_ACTION

        if request.blueprint in API_BLUEPRINTS:
            # An API view without with_audit still gets its event, named after its endpoint.
            return f"route.{request.endpoint}"

        return None  # The public OpenAPI document.

    if audit is not None and audit.error is not None:
        # A guard denied a host route that has no with_audit: record it under its endpoint.
        return f"host.{request.endpoint}"

    return None


def classify(status: int, audit: RequestAudit) -> str:
    """Return the outcome of a response: ``success``, ``denied`` or ``error``."""
    if audit.denied_by_guard:
        return "denied"

    if status < 400:
        return "success"

    if status in _DENIAL_STATUSES or (status == 404 and request.url_rule is not None):
        return "denied"

    return "error"


def record_request_event(response: Response) -> Response:
    """Record the current request's event, once; the ``after_request`` hook of every app.

    A success whose event cannot be stored becomes a 500, so no successful action
    goes unrecorded. A denial or error keeps its response, and the audit failure is
    logged. Before a failure's event, the session is rolled back: a failed request
    must not commit anything but its event.
    """
    if not audit_settings().enabled:
        return response

    audit = current_request_audit()
    action = _request_action(audit)
    if action is None:
        return response

    audit = audit or current_request_audit(create=True)
    assert audit is not None
    session = get_state().session
    outcome = classify(response.status_code, audit)
    if audit.event_state == COMMITTED:
        # NOTE: if the request fails after the view committed its write and event, the stored
        # event keeps the status the view passed to record(), not the final one.
        return response

    if audit.event_state == PENDING and outcome == "success":
        # The view recorded its event with record() and left the commit to the request.
        try:
            session.commit()
        except Exception:
            session.rollback()
            logger.exception("Failed to commit the audit event of %s (request id %s)", action, get_request_id())
            return error_response(InternalError())
        return response

    if outcome != "success":
        session.rollback()

    # TODO: requests without a valid credential are not rate-limited (a 401 is never counted), yet each
    # one records an event here: a database write that waits on the lock of the one "anonymous" chain head.
    try:
        _record_event(action, audit, outcome, response.status_code)
    except Exception as error:
        session.rollback()
        outage = error if isinstance(error, SQLAlchemyError) and is_database_unavailable(error) else None
        if outage is not None:
            # Logged once per outage: during one, every request would fail here the same way.
            OUTAGE_LOG.failed(outage)
        else:
            logger.exception(
                "Failed to record the audit event of %s (%s, status %s, request id %s)",
                action,
                outcome,
                response.status_code,
                get_request_id(),
            )
        if outcome == "success":
            return error_response(database_unavailable() if outage is not None else InternalError())

    return response


def _record_event(action: str, audit: RequestAudit, outcome: str, status: int) -> None:
    details: EventDetails = {
        "kind": audit.kind,
        "outcome": outcome,
        "target_type": audit.target_type,
        "target_id": audit.target_id,
        "changes": audit.changes if outcome == "success" else None,
        "result_count": audit.result_count if outcome == "success" else None,
        "http_status": status,
        "error_code": audit.error.error_code if audit.error is not None and status >= 400 else None,
    }
    session = get_state().session
    batch = current_batch()
    if batch is not None and (audit.kind == "read" or outcome != "success"):
        # Whatever the view left in the session commits now, as it would with its event.
        session.commit()
        if batch.add(build_event(action, **details)):
            return

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            record(action, **details)
            session.commit()
            return
        except IntegrityError:
            session.rollback()
            if attempt == _ATTEMPTS:
                raise
