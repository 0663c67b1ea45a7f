"""Idempotency keys for write routes: the decorator, the fingerprint and the SQL and Redis stores."""

from __future__ import annotations

from .decorator import COMPONENT, IDEMPOTENT_ATTRIBUTE, get_idempotency_store, with_idempotency_required
from .keys import HEADER, REPLAYED_HEADER
from .store import IdempotencyRecord, IdempotencyStore, StoredResponse, StoreUnavailable, build_store

__all__ = [
    "COMPONENT",
    "HEADER",
    "IDEMPOTENT_ATTRIBUTE",
    "REPLAYED_HEADER",
    "IdempotencyRecord",
    "IdempotencyStore",
    "StoreUnavailable",
    "StoredResponse",
    "build_store",
    "get_idempotency_store",
    "with_idempotency_required",
]
