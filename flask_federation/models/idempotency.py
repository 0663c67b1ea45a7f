"""Idempotency keys and their stored responses, for the SQL idempotency store."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, JSONDocument, UTCDateTime, utcnow

IDEMPOTENCY_IN_PROGRESS = "in_progress"
IDEMPOTENCY_COMPLETED = "completed"


class IdempotencyKey(Base):
    """One claimed idempotency key: its owner token, the request's fingerprint and, once done, the response."""

    __tablename__ = "federation_idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 of the scope (audience, principal, method, route) and the client's key; unique, so claims are atomic.
    lookup_key: Mapped[str] = mapped_column(String(64), unique=True)
    #: SHA-256 of method, path, canonical query, content type and body of the first request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: Random token of the request that made the claim. Completing and releasing must present it.
    owner: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=IDEMPOTENCY_IN_PROGRESS)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[list[list[str]] | None] = mapped_column(JSONDocument)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    #: When the record may be purged; a claim that meets an expired record replaces it.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)

    def __repr__(self) -> str:
        return f"IdempotencyKey(lookup_key={self.lookup_key[:12]!r}..., state={self.state!r})"
