"""The audit log: persisted, redacted, hash-chained events of every federation action.

Public API: :func:`record` adds an event to the current session in the caller's
transaction; :func:`with_audit` audits a whole view; :func:`annotate` adds a
target id, result count or changes to the request's event; :func:`acting_as`
names the system actor of provisioning calls. See docs/federation/audit.md.
"""

from __future__ import annotations

from .actors import Actor, acting_as
from .changes import changes_between
from .decorator import annotate, with_audit
from .redaction import REDACTED
from .writer import SCHEMA_VERSION, record

__all__ = ["REDACTED", "SCHEMA_VERSION", "Actor", "acting_as", "annotate", "changes_between", "record", "with_audit"]
