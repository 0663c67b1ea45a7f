"""Signed keyset cursors: opaque to clients, bound to the caller and the filters."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from ..errors import InvalidCursor, ValidationFailed
from ..state import get_state

T = TypeVar("T")

_SALT = "flask-federation.cursor.v1"

# Row ids are positive, and PostgreSQL rejects a query parameter beyond 64 bits with an error.
_MAX_ROW_ID = 2**63 - 1


def _serializer() -> URLSafeSerializer:
    secret = get_state().settings.cursor_secret or current_app.config.get("SECRET_KEY")
    if not secret:
        raise RuntimeError("Set FEDERATION_CURSOR_SECRET or SECRET_KEY: pagination cursors are signed with it.")

    return URLSafeSerializer(secret, salt=_SALT)


def _binding(subject: str, filters: Mapping[str, Any]) -> str:
    canonical = json.dumps({"subject": subject, "filters": filters}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def encode_cursor(subject: str, filters: Mapping[str, Any], created_at: dt.datetime, row_id: int) -> str:
    """Return a cursor that resumes after the row ``(created_at, row_id)``."""
    payload = [_binding(subject, filters), created_at.isoformat(), row_id]
    return str(_serializer().dumps(payload))


def decode_cursor(cursor: str, subject: str, filters: Mapping[str, Any]) -> tuple[dt.datetime, int]:
    """Return the position a cursor resumes after, or raise 400 ``invalid_cursor``.

    A cursor made for another caller or other filters is rejected like a forged one,
    so a cursor can neither leak nor skip rows.
    """
    try:
        payload = _serializer().loads(cursor)
        binding, created_at, row_id = payload
        position = dt.datetime.fromisoformat(created_at)
        if position.tzinfo is None:
            raise InvalidCursor()

        # The query compares in UTC; a time near year 1 or 9999 would overflow there with a 500.
        position = position.astimezone(dt.UTC)
    except (BadSignature, ValueError, TypeError, OverflowError):
        raise InvalidCursor() from None

    if binding != _binding(subject, filters) or not isinstance(row_id, int) or not 0 < row_id <= _MAX_ROW_ID:
        raise InvalidCursor()

    return position, row_id


def resolve_page_size(limit: int | None) -> int:
    """Return ``limit``, or the default page size without one; raise 422 outside 1 to the maximum."""
    settings = get_state().settings
    page_size = settings.default_page_size if limit is None else limit
    if not 1 <= page_size <= settings.max_page_size:
        raise ValidationFailed(details={"limit": [f"Must be between 1 and {settings.max_page_size}, got {page_size}."]})

    return int(page_size)


def fetch_keyset_page(
    query: Select[T],
    *,
    position: tuple[InstrumentedAttribute[dt.datetime], InstrumentedAttribute[int]],
    subject: str,
    filters: Mapping[str, Any],
    limit: int,
    cursor: str | None,
) -> tuple[list[T], str | None]:
    """Run ``query`` for one page newest first, resuming after ``cursor``; return the rows and the next cursor.

    ``position`` is the (timestamp, id) column pair that orders the rows and that an
    index must cover. The cursor is bound to ``subject`` and ``filters``.
    """
    timestamp_column, id_column = position
    if cursor is not None:
        timestamp, row_id = decode_cursor(cursor, subject, filters)
        query = query.where(tuple_(timestamp_column, id_column) < tuple_(timestamp, row_id))

    query = query.order_by(timestamp_column.desc(), id_column.desc()).limit(limit + 1)
    rows = list(get_state().session.execute(query).scalars())
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(subject, filters, getattr(last, timestamp_column.key), getattr(last, id_column.key))

    return items, next_cursor
