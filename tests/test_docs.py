"""Docs that are generated from code stay current."""

from __future__ import annotations

from scripts.render_config_reference import current_table, render_table


def test_configuration_table_is_current() -> None:
    assert current_table() == render_table(), "run: python scripts/render_config_reference.py --write"
