"""Reading the breaking changes that the changelog declares intentional.

The allow-list lives in the "Unreleased" section of ``CHANGELOG.md``: the lines
between a ``## Unreleased`` (or ``## [Unreleased]``) heading and the next level-2
heading. Each intentional break is one list item of the form::

    - Breaking: `<break id>` <why, and what clients should do>

The id sits in backticks, exactly as the check prints it. A list item that starts
with ``Breaking:`` but has no id in backticks is reported as malformed, so a typo
cannot silently allow nothing.
"""

from __future__ import annotations

import dataclasses
import re

_UNRELEASED_HEADING = re.compile(r"^##\s+\[?unreleased\]?\s*$", re.IGNORECASE)
_LEVEL_TWO_HEADING = re.compile(r"^##\s")
_BREAKING_ITEM = re.compile(r"^\s*[-*]\s+Breaking:", re.IGNORECASE)
_ALLOWED_BREAK = re.compile(r"^\s*[-*]\s+Breaking:\s+`([^`]+)`(?:\s.*)?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class AllowList:
    """The break ids that the "Unreleased" section allows, and its malformed ``Breaking:`` lines."""

    ids: frozenset[str]
    malformed: tuple[str, ...]


def normalise_id(break_id: str) -> str:
    """Collapse runs of whitespace, so that an id wrapped or spaced differently still matches."""
    return " ".join(break_id.split())


def unreleased_section(changelog: str) -> list[str]:
    """Return the lines of the "Unreleased" section, or an empty list when there is none."""
    lines = changelog.splitlines()
    for index, line in enumerate(lines):
        if _UNRELEASED_HEADING.match(line.strip()):
            section: list[str] = []
            for following in lines[index + 1 :]:
                if _LEVEL_TWO_HEADING.match(following):
                    break
                section.append(following)
            return section

    return []


def parse_allow_list(changelog: str) -> AllowList:
    """Return the allowed break ids listed in the "Unreleased" section of ``changelog``."""
    ids: set[str] = set()
    malformed: list[str] = []
    for line in unreleased_section(changelog):
        if not _BREAKING_ITEM.match(line):
            continue

        match = _ALLOWED_BREAK.match(line)
        if match is None:
            malformed.append(line.strip())
        else:
            ids.add(normalise_id(match.group(1)))

    return AllowList(frozenset(ids), tuple(malformed))
