"""Providers, their tenants, developers, and the API credentials of both."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONDocument, UTCDateTime, new_public_id, utcnow

TENANT_STATUSES = ("active", "suspended")


class Provider(Base):
    __tablename__ = "federation_providers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_public_id("prv_"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Developer(Base):
    __tablename__ = "federation_developers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_public_id("dev_"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Tenant(Base):
    __tablename__ = "federation_tenants"
    __table_args__ = (
        UniqueConstraint("provider_id", "slug", name="uq_federation_tenants_provider_slug"),
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
        # Keyset pagination walks (created_at, id) newest first within one provider,
        # optionally filtered by status: these two indexes serve both without a sort.
        Index("ix_federation_tenants_provider_created", "provider_id", "created_at", "id"),
        Index("ix_federation_tenants_provider_status_created", "provider_id", "status", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True, default=lambda: new_public_id("ten_"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("federation_providers.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16), default="active")
    region: Mapped[str] = mapped_column(String(32))
    # "metadata" is reserved by SQLAlchemy's declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # Loaded with every tenant because every response names the owning provider's public id.
    provider: Mapped[Provider] = relationship(lazy="joined", innerjoin=True)


class Credential(Base):
    """An API key: only its SHA-256 hash and its non-secret key id are stored."""

    __tablename__ = "federation_credentials"
    __table_args__ = (
        CheckConstraint(
            "(audience = 'provider' AND provider_id IS NOT NULL AND developer_id IS NULL)"
            " OR (audience = 'developer' AND developer_id IS NOT NULL AND provider_id IS NULL)",
            name="one_owner",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    audience: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[int | None] = mapped_column(
        ForeignKey("federation_providers.id", ondelete="CASCADE"), index=True
    )
    developer_id: Mapped[int | None] = mapped_column(
        ForeignKey("federation_developers.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64))
    entitlements: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    provider: Mapped[Provider | None] = relationship(lazy="raise")
    developer: Mapped[Developer | None] = relationship(lazy="raise")
