"""Render the OpenAPI document of the federation API with default settings.

Usage: python scripts/render_openapi.py [--write]
Without --write it prints the document; with it, it replaces docs/api/openapi.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask

from flask_federation import Federation
from flask_federation.openapi import render_openapi

DOC = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"


def render_default_document() -> str:
    app = Flask("openapi_render")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_ENABLED=True)
    Federation(app)
    return render_openapi(app)


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        DOC.write_text(render_default_document(), encoding="utf-8")
    else:
        print(render_default_document(), end="")
