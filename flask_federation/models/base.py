"""The declarative base, column types and id helpers shared by every federation table.

The tables use their own ``MetaData`` so that a host app that passes its own
Flask-SQLAlchemy ``db`` keeps its models apart from ours: its Alembic
``target_metadata`` lists both (see docs/federation/integration.md).
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_ALPHABET = string.ascii_letters + string.digits


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_public_id(prefix: str, length: int = 20) -> str:
    """Return an opaque public id such as ``ten_4fJ...``; 20 base62 characters carry about 119 bits."""
    # One uniform draw below 62**length, written in base 62: the same distribution as a
    # secrets.choice per character, at one read of the OS's random source instead of twenty.
    value = secrets.randbelow(len(_ALPHABET) ** length)
    characters = []
    for _ in range(length):
        value, index = divmod(value, len(_ALPHABET))
        characters.append(_ALPHABET[index])

    return prefix + "".join(characters)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as naive UTC and returned timezone-aware.

    SQLite drops the offset of aware datetimes, so storing naive UTC everywhere keeps
    comparisons and cursor values identical on SQLite and PostgreSQL.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None

        if value.tzinfo is None:
            raise ValueError("Naive datetimes are ambiguous; pass a timezone-aware UTC datetime.")

        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None

        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
