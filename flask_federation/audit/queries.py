"""Reading the audit log: filtered pages newest first, and oldest-first streams for export."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select

from ..models import AuditEvent
from ..services.pagination import fetch_keyset_page
from ..state import get_state
from .chain import event_to_dict


@dataclasses.dataclass(frozen=True)
class AuditFilter:
    """A selection of events: one chain or all, and optional action, outcome and time range.

    ``since`` is inclusive and ``until`` exclusive; both must be timezone-aware.
    """

    chain: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}.")

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.chain is not None:
            query = query.where(AuditEvent.chain == self.chain)

        if self.action is not None:
            query = query.where(AuditEvent.action == self.action)

        if self.outcome is not None:
            query = query.where(AuditEvent.outcome == self.outcome)

        if self.since is not None:
            query = query.where(AuditEvent.occurred_at >= self.since)

        if self.until is not None:
            query = query.where(AuditEvent.occurred_at < self.until)

        return query

    def binding(self) -> dict[str, Any]:
        """Return the filters as JSON data, to bind a pagination cursor to them."""
        return {
            "action": self.action,
            "outcome": self.outcome,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclasses.dataclass(frozen=True)
class AuditPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def list_page(filters: AuditFilter, *, subject: str, limit: int, cursor: str | None = None) -> AuditPage:
    """Return one page of events newest first, with keyset pagination on ``(occurred_at, id)``.

    ``subject`` binds the cursor to its caller, so a cursor cannot be replayed by another one.
    """
    items, next_cursor = fetch_keyset_page(
        filters.apply(select(AuditEvent)),
        position=(AuditEvent.occurred_at, AuditEvent.id),
        subject=subject,
        filters=filters.binding(),
        limit=limit,
        cursor=cursor,
    )
    return AuditPage([event_to_dict(row) for row in items], next_cursor)


def iter_events(filters: AuditFilter, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """Yield matching events oldest first, reading ``batch_size`` rows at a time."""
    query = filters.apply(select(AuditEvent)).order_by(AuditEvent.occurred_at, AuditEvent.id)
    with get_state().session.execute(query.execution_options(yield_per=batch_size)) as result:
        for row in result.scalars():
            yield event_to_dict(row)
