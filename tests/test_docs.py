"""Docs that are generated from code stay current."""

from __future__ import annotations

import re
from pathlib import Path

from flask_federation.config import SETTINGS, load_settings
from scripts.render_config_reference import current_table, render_table

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def test_configuration_table_is_current() -> None:
    assert current_table() == render_table(), "run: python scripts/render_config_reference.py --write"


def test_env_example_lists_oidc_settings() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?(FEDERATION_[A-Z_]+)=", text, flags=re.MULTILINE))
    expected = {setting.key for setting in SETTINGS if "OIDC" in setting.key or "AUTH" in setting.key}

    assert expected - listed == set()


def test_env_example_values_load() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    values = dict(line.split("=", 1) for line in lines if line.startswith("FEDERATION_"))

    assert load_settings(values).oidc_enabled is False
