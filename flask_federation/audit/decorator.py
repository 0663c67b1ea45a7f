"""``with_audit`` and ``annotate``: audit a view, federation or host, with one event per request."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import current_app
from werkzeug.exceptions import HTTPException

from ..errors import FederationError, InternalError, from_http_exception
from ..models.audit import KINDS
from .context import current_request_audit

P = ParamSpec("P")
R = TypeVar("R")

_UNSET: Any = object()


def with_audit(
    action: str,
    *,
    kind: str = "read",
    target_type: str | None = None,
    target_id_arg: str | None = None,
) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Record one audit event for every request to the decorated view, whatever its outcome.

    Place it above the auth, rate-limit and idempotency decorators, so that their
    denials carry ``action``. ``target_id_arg`` names the URL variable holding the
    target id (``"tenant_id"``). The event is recorded after the response is
    built: ``success`` for 1xx to 3xx, ``denied`` for guard denials and 401, 403,
    429 and resource 404s, ``error`` otherwise. A view that calls
    :func:`~flask_federation.audit.record` itself keeps that event instead.
    """
    if kind not in KINDS:
        raise ValueError(f"Audit kind must be one of {', '.join(KINDS)}, got {kind!r}.")

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            audit = current_request_audit(create=True)
            assert audit is not None, "a view always runs inside a request"
            # The outermost decorator names the action when views are stacked.
            if audit.action is None:
                audit.action = action
                audit.kind = kind
                audit.target_type = target_type
                if target_id_arg is not None and kwargs.get(target_id_arg) is not None:
                    audit.target_id = str(kwargs[target_id_arg])

            try:
                return current_app.ensure_sync(view)(*args, **kwargs)
            except Exception as error:
                if audit.error is None:
                    audit.error = _as_federation_error(error)
                raise

        return wrapper

    return decorator


def annotate(
    *,
    target_id: str | None = _UNSET,
    result_count: int | None = _UNSET,
    changes: Any = _UNSET,
) -> None:
    """Add details to the event that the current request will record; outside a request it does nothing."""
    audit = current_request_audit(create=True)
    if audit is None:
        return

    if target_id is not _UNSET:
        audit.target_id = target_id

    if result_count is not _UNSET:
        audit.result_count = result_count

    if changes is not _UNSET:
        audit.changes = changes


def _as_federation_error(error: Exception) -> FederationError:
    if isinstance(error, FederationError):
        return error

    if isinstance(error, HTTPException):
        return from_http_exception(error)

    return InternalError()
