"""Every federation table. Importing this package registers them all on ``Base.metadata``."""

from __future__ import annotations

from .audit import AuditChain, AuditEvent
from .base import Base, new_public_id, utcnow
from .core import TENANT_STATUSES, Credential, Developer, Provider, Tenant
from .idempotency import IDEMPOTENCY_COMPLETED, IDEMPOTENCY_IN_PROGRESS, IdempotencyKey

metadata = Base.metadata

__all__ = [
    "IDEMPOTENCY_COMPLETED",
    "IDEMPOTENCY_IN_PROGRESS",
    "TENANT_STATUSES",
    "AuditChain",
    "AuditEvent",
    "Base",
    "Credential",
    "Developer",
    "IdempotencyKey",
    "Provider",
    "Tenant",
    "metadata",
    "new_public_id",
    "utcnow",
]
