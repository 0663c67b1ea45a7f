"""Building the ``changes`` object of a write event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changes_between(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``{"before": ..., "after": ...}`` holding only the fields that differ.

    A create passes ``before=None`` and a delete ``after=None``; then the other side is
    kept whole. The values are redacted when the event is recorded, not here.
    """
    if before is None or after is None:
        return {"before": None if before is None else dict(before), "after": None if after is None else dict(after)}

    names = sorted(set(before) | set(after))
    changed = [name for name in names if before.get(name) != after.get(name)]
    return {
        "before": {name: before.get(name) for name in changed},
        "after": {name: after.get(name) for name in changed},
    }
