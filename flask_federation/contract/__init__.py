"""Contract checks of the OpenAPI document: breaking changes against the last release.

Framework-free: :func:`check_contract` takes two OpenAPI documents and the text of
the changelog, and returns a :class:`ContractReport`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .allowlist import AllowList, normalise_id, parse_allow_list
from .breaking import find_breaks
from .schema_diff import Break, UnresolvableReference

#: Path of the last release's OpenAPI document, relative to the repository root.
RELEASED_DOCUMENT = Path("docs") / "api" / "openapi.released.json"
CHANGELOG = Path("CHANGELOG.md")


@dataclasses.dataclass(frozen=True)
class ContractReport:
    """The breaks found, which of them the changelog allows, and its malformed allow-list lines."""

    breaks: tuple[Break, ...]
    allow_list: AllowList

    @property
    def unallowed(self) -> tuple[Break, ...]:
        return tuple(found for found in self.breaks if normalise_id(found.id) not in self.allow_list.ids)

    @property
    def unused_allowances(self) -> tuple[str, ...]:
        """Return allowed ids that match no break: stale or misspelt entries."""
        found = {normalise_id(item.id) for item in self.breaks}
        return tuple(sorted(self.allow_list.ids - found))

    @property
    def ok(self) -> bool:
        return not self.unallowed and not self.allow_list.malformed

    def render(self) -> str:
        """Return the report as text: one line per break, then a verdict line."""
        lines: list[str] = []
        allowed = self.allow_list.ids
        for found in self.breaks:
            verdict = "allowed " if normalise_id(found.id) in allowed else "BREAKING"
            lines.append(f"{verdict} {found.id}")
            lines.append(f"         {found.message}")
        for line in self.allow_list.malformed:
            lines.append(f"MALFORMED changelog line (write it as - Breaking: `<break id>` <reason>): {line}")
        for unused in self.unused_allowances:
            lines.append(f"note: the changelog allows `{unused}`, but no such break was found.")

        if not self.breaks and self.ok:
            lines.append("Contract check passed: no breaking changes.")
        elif self.ok:
            lines.append(f"Contract check passed: {len(self.breaks)} breaking changes, all listed in the changelog.")
        else:
            lines.append(
                f"Contract check failed: {len(self.unallowed)} breaking changes are not listed as intentional. "
                "Restore compatibility, or add each id to the Unreleased section of CHANGELOG.md "
                "as a line '- Breaking: `<break id>` <reason>'."
            )
        return "\n".join(lines)


def check_contract(released: Mapping[str, Any], current: Mapping[str, Any], changelog: str = "") -> ContractReport:
    """Compare ``current`` with ``released`` and apply the allow-list of ``changelog``."""
    return ContractReport(tuple(find_breaks(released, current)), parse_allow_list(changelog))


def load_document(path: Path) -> dict[str, Any]:
    """Read an OpenAPI document from a JSON file, raising ``ValueError`` naming the file when it is not one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the OpenAPI document {path}: {error}") from None

    if not isinstance(document, dict) or "paths" not in document:
        raise ValueError(f"{path} is not an OpenAPI document: it has no 'paths' object.")
    return document


__all__ = [
    "CHANGELOG",
    "RELEASED_DOCUMENT",
    "AllowList",
    "Break",
    "ContractReport",
    "UnresolvableReference",
    "check_contract",
    "find_breaks",
    "load_document",
    "parse_allow_list",
]
