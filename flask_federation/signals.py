"""Blinker signals that host apps can connect to, for example to forward events to their own pipeline.

Every signal is sent with the app as sender. No payload ever contains a secret.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A guard rejected a request; keyword ``error`` is the :class:`~flask_federation.errors.FederationError`.
request_denied = _signals.signal("federation.request-denied")

#: An API key was issued; keywords ``key_id``, ``audience``, ``owner_id``, ``entitlements``.
key_issued = _signals.signal("federation.key-issued")

#: An API key was revoked; keywords ``key_id``, ``audience``, ``owner_id``.
key_revoked = _signals.signal("federation.key-revoked")

#: An audit event was committed; keyword ``event`` is the redacted event as a JSON-ready dict
#: (the fields of docs/federation/audit.md, with ``chain``, ``sequence``, ``prev_hash`` and ``hash``).
#: Sent after the commit, so receivers must not use the SQLAlchemy session; forward the event instead.
audit_event_recorded = _signals.signal("federation.audit-event-recorded")
