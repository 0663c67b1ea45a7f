"""``record``: add an audit event to the current session, in the caller's transaction.

:func:`record` never commits. A write service calls it after its change and
before its commit, so the change and its event commit or roll back together.
The ``audit_event_recorded`` signal is sent only once the event is committed.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, TypedDict, Unpack

from flask import Flask, current_app, has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

from .. import signals
from ..auth.principal import Principal, get_current_principal
from ..models.audit import KINDS, OUTCOMES
from ..models.base import new_public_id
from ..request_id import get_request_id
from ..state import get_state
from .actors import Actor, current_system_actor
from .chain import append_event, chain_for_owner, event_to_dict
from .context import COMMITTED, PENDING, RequestAudit, current_request_audit
from .redaction import Redactor, serialize_event

logger = logging.getLogger("flask_federation.audit")

#: Version of the event layout; it changes when fields are added, removed or change meaning.
SCHEMA_VERSION = 1

_COMPONENT = "audit"
_PENDING_KEY = "flask_federation.audit_pending"


@dataclasses.dataclass(frozen=True)
class AuditSettings:
    """The audit settings of one app, built once by ``init_app``."""

    enabled: bool
    redactor: Redactor
    hmac_key: str | None
    retention_days: int | None


def install_settings(app: Flask) -> AuditSettings:
    state = get_state(app)
    settings = state.settings
    audit = AuditSettings(
        enabled=bool(settings.audit_enabled),
        redactor=Redactor(settings.audit_redact_keys),
        hmac_key=settings.audit_hmac_key,
        retention_days=settings.audit_retention_days,
    )
    state.components[_COMPONENT] = audit
    return audit


def audit_settings() -> AuditSettings:
    audit = get_state().components[_COMPONENT]
    assert isinstance(audit, AuditSettings)
    return audit


@dataclasses.dataclass
class _PendingEvent:
    app: Flask
    event: dict[str, Any]
    request_audit: RequestAudit | None
    #: The innermost transaction (a savepoint, or the root) the event was flushed in.
    transaction: SessionTransaction | None

    def inside(self, transaction: SessionTransaction) -> bool:
        current = self.transaction
        while current is not None:
            if current is transaction:
                return True
            current = current.parent

        return False


class EventDetails(TypedDict, total=False):
    """The keyword arguments of :func:`record`; every one is optional."""

    kind: str
    outcome: str
    target_type: str | None
    target_id: str | None
    owner_id: str | None
    changes: Any
    result_count: int | None
    http_status: int | None
    error_code: str | None
    principal: Principal | None
    actor: Actor | None


def build_event(action: str, **details: Unpack[EventDetails]) -> dict[str, Any]:
    """Return the redacted fields of a new event, with its ``chain``, ready for :func:`append_event`.

    The actor is ``principal``, else ``actor``, else the request's principal, else
    ``anonymous`` inside a request and the system actor outside one. The event
    joins the chain of ``owner_id`` (``prv_...``/``dev_...``), which defaults to
    the principal's own id. Request id, client address and user agent come from
    the current request, if any. Every field passes the redaction allow-list.

    Raises ``ValueError`` for an unknown ``kind`` or ``outcome``, or a ``result_count``
    or ``http_status`` outside the 32-bit range of its column.
    """
    settings = audit_settings()
    kind = details.get("kind", "read")
    outcome = details.get("outcome", "success")
    if kind not in KINDS:
        raise ValueError(f"Audit kind must be one of {', '.join(KINDS)}, got {kind!r}.")

    if outcome not in OUTCOMES:
        raise ValueError(f"Audit outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}.")

    fields: dict[str, Any] = {
        "event_id": new_public_id("evt_"),
        "schema_version": SCHEMA_VERSION,
        "action": action,
        "kind": kind,
        "outcome": outcome,
        "target_type": details.get("target_type"),
        "target_id": details.get("target_id"),
        "changes": details.get("changes"),
        "result_count": details.get("result_count"),
        "http_status": details.get("http_status"),
        "error_code": details.get("error_code"),
    }
    fields.update(_request_fields())
    actor = details.get("actor")
    owner_id = details.get("owner_id")
    principal = details.get("principal") or (get_current_principal() if actor is None else None)
    if principal is not None:
        fields.update(
            actor_type=principal.audience.value,
            actor_id=principal.subject_id,
            actor_name=principal.display_name,
            credential_id=principal.credential_id,
            auth_method=principal.auth_method,
        )
        owner_id = owner_id or principal.subject_id
    else:
        chosen = actor or (Actor("anonymous") if has_request_context() else current_system_actor())
        fields.update(actor_type=chosen.type, actor_id=chosen.id, actor_name=chosen.name)

    stored = serialize_event({**fields, "owner_id": owner_id}, settings.redactor)
    stored["chain"] = chain_for_owner(stored["owner_id"], anonymous=stored["actor_type"] == "anonymous")
    return stored


def record(action: str, **details: Unpack[EventDetails]) -> dict[str, Any] | None:
    """Add an audit event to the current SQLAlchemy session and flush it, without committing.

    :func:`build_event` describes how ``details`` choose the actor and the chain.
    Returns the redacted event as the signal will carry it, or None when
    ``FEDERATION_AUDIT_ENABLED`` is false. Database errors propagate, and the
    caller must roll back.
    """
    settings = audit_settings()
    if not settings.enabled:
        return None

    stored = build_event(action, **details)
    session = get_state().session
    if isinstance(session, scoped_session):
        session = session()  # The request's own Session, which carries the transaction state.

    payload = event_to_dict(append_event(session, stored, settings.hmac_key))
    request_audit = current_request_audit(create=True)
    if request_audit is not None:
        request_audit.event_state = PENDING

    pending: list[_PendingEvent] = session.info.setdefault(_PENDING_KEY, [])
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    pending.append(_PendingEvent(app, payload, request_audit, session.get_nested_transaction() or session.get_transaction()))
    return payload


def _request_fields() -> dict[str, Any]:
    if not has_request_context():
        return {}

    return {
        "request_id": get_request_id(),
        "client_address": request.remote_addr,
        "user_agent": request.headers.get("User-Agent"),
    }


def has_pending_event(session: Session) -> bool:
    return bool(session.info.get(_PENDING_KEY))


@event.listens_for(Session, "after_commit")
def _send_committed_events(session: Session) -> None:
    # Releasing a savepoint also fires after_commit, but nothing is durable until the root commits.
    if session.in_nested_transaction():
        return

    for item in session.info.pop(_PENDING_KEY, []):
        if item.request_audit is not None:
            item.request_audit.event_state = COMMITTED

        try:
            signals.audit_event_recorded.send(item.app, event=item.event)
        except Exception:
            # The event is committed; a failing receiver must not turn the request into an error.
            logger.exception("A receiver of audit_event_recorded failed for event %s", item.event["event_id"])


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_events(session: Session, previous_transaction: SessionTransaction) -> None:
    if not previous_transaction.nested and previous_transaction.parent is not None:
        return

    kept: list[_PendingEvent] = []
    for item in session.info.get(_PENDING_KEY, []):
        if not item.inside(previous_transaction):
            kept.append(item)
        elif item.request_audit is not None:
            item.request_audit.event_state = None

    session.info[_PENDING_KEY] = kept
