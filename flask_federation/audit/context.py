"""The audit state of the current request: its action, target, counts and error, collected until it ends."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask import has_request_context

from ..context import request_state
from ..errors import FederationError

_KEY = "audit"

#: ``event_state`` values: the request's event was added to the session and awaits its commit,
#: or was committed. ``None``: no event yet, or it was rolled back with its transaction.
PENDING = "pending"
COMMITTED = "committed"


@dataclasses.dataclass
class RequestAudit:
    """The audit state of one request, kept in the per-request state (never on ``flask.g``)."""

    action: str | None = None
    kind: str = "read"
    target_type: str | None = None
    target_id: str | None = None
    result_count: int | None = None
    changes: Any = None
    #: The error the response carries, noted by the denial signal or an error handler.
    error: FederationError | None = None
    #: True when a guard denied the request through ``run_guard``.
    denied_by_guard: bool = False
    event_state: str | None = None


def current_request_audit(create: bool = False) -> RequestAudit | None:
    """Return the current request's audit state; with ``create``, start one. None outside a request."""
    if not has_request_context():
        return None

    state = request_state()
    audit: RequestAudit | None = state.get(_KEY)
    if audit is None and create:
        audit = RequestAudit()
        state[_KEY] = audit

    return audit
