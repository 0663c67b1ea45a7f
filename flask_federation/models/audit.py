"""The audit log: one row per recorded event, and one head row per hash chain.

Actors are copied into each event (id and display name at the time) instead of
referenced by foreign key, so deleting a provider, developer or key keeps its
history. Every event belongs to one chain: ``provider:prv_...``, ``developer:dev_...``,
``system`` or ``anonymous``. ``sequence`` numbers the events of a chain without
gaps. ``hash`` covers every other column but the surrogate ``id``, including
``prev_hash``, the previous event's hash.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UTCDateTime

#: The ``prev_hash`` of the first event of a chain that was never purged.
GENESIS_HASH = "0" * 64

ACTOR_TYPES = ("provider", "developer", "system", "anonymous")
KINDS = ("read", "write")
OUTCOMES = ("success", "denied", "error")

# SQLite assigns row ids only to a column declared exactly INTEGER PRIMARY KEY.
_BigIntegerId = BigInteger().with_variant(Integer(), "sqlite")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class AuditEvent(Base):
    __tablename__ = "federation_audit_events"
    __table_args__ = (
        # Two writers can never commit the same position of a chain, even if the head lock were bypassed.
        UniqueConstraint("chain", "sequence", name="uq_federation_audit_events_chain_sequence"),
        CheckConstraint(_one_of("actor_type", ACTOR_TYPES), name="actor_type"),
        CheckConstraint(_one_of("kind", KINDS), name="kind"),
        CheckConstraint(_one_of("outcome", OUTCOMES), name="outcome"),
        # The audit routes read one chain newest first; export and purge walk all chains by time.
        Index("ix_federation_audit_events_chain_occurred", "chain", "occurred_at", "id"),
        Index("ix_federation_audit_events_occurred", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(_BigIntegerId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    chain: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    schema_version: Mapped[int] = mapped_column(Integer())
    request_id: Mapped[str | None] = mapped_column(String(128))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_name: Mapped[str | None] = mapped_column(String(200))
    credential_id: Mapped[str | None] = mapped_column(String(128))
    auth_method: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer())
    error_code: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    result_count: Mapped[int | None] = mapped_column(Integer())
    # Plain JSON, not JSONB: PostgreSQL keeps json text verbatim, so numbers read back exactly as
    # hashed, while JSONB would rewrite values such as 1e+20 or -0.0 and break the chain.
    changes: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)


class AuditChain(Base):
    """The head of one hash chain, and the checkpoint that purging leaves behind.

    Writers lock this row (``SELECT ... FOR UPDATE``) to take the next sequence
    number, so concurrent writers cannot fork a chain. After a purge,
    ``checkpoint_sequence`` and ``checkpoint_hash`` are those of the last deleted
    event; verification starts from them. ``checkpoint_digest`` binds the two to
    the chain with the audit hash (an HMAC when a key is set).
    """

    __tablename__ = "federation_audit_chains"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger(), default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
    checkpoint_sequence: Mapped[int] = mapped_column(BigInteger(), default=0)
    checkpoint_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)
    checkpoint_digest: Mapped[str | None] = mapped_column(String(64))
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
