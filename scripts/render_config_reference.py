"""Render the settings table of docs/federation/configuration.md from flask_federation.config.

Usage: python scripts/render_config_reference.py [--write]
Without --write it prints the table; with it, it replaces the table in the docs.
A test fails when the table in the docs differs from this output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flask_federation.config import SETTINGS

DOC = Path(__file__).resolve().parent.parent / "docs" / "federation" / "configuration.md"
TABLE_START = "| Key | Default | Effect |"
TABLE_END = "<!-- end of settings table -->"


def render_table() -> str:
    lines = [TABLE_START, "| --- | --- | --- |"]
    for setting in SETTINGS:
        default = "unset" if setting.default is None else f"`{json.dumps(setting.default)}`"
        lines.append(f"| `{setting.key}` | {default} | {setting.doc} |")

    return "\n".join(lines) + "\n"


def current_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index(TABLE_START) : text.index(TABLE_END)]


def write_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START), text.index(TABLE_END)
    DOC.write_text(text[:start] + render_table() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write_table()
    else:
        print(render_table(), end="")
