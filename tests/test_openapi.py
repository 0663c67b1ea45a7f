"""The OpenAPI document: served, valid, complete, and equal to the committed copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from openapi_spec_validator import validate

from flask_federation.openapi import build_openapi, render_openapi
from scripts.render_openapi import render_default_document

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"


def test_document_is_valid(app: Flask) -> None:
    validate(build_openapi(app))  # type: ignore[arg-type]


def test_served_document_matches_generated(app: Flask) -> None:
    response = app.test_client().get("/federation/openapi.json")
    assert response.status_code == 200
    assert response.json == build_openapi(app)


def test_committed_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_default_document(), "run: python scripts/render_openapi.py --write"


def test_every_api_route_documented(app: Flask) -> None:
    document = build_openapi(app)
    prefix = "/federation"
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in {"federation_provider", "federation_developer"}:
            continue
        path = rule.rule.removeprefix(prefix).replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented


def test_document_is_stable_json(app: Flask) -> None:
    assert json.loads(render_openapi(app)) == build_openapi(app)


def test_rate_limited_operations_documented(app: Flask) -> None:
    responses = build_openapi(app)["paths"]["/provider/v1/tenants"]["get"]["responses"]
    assert {"RateLimit-Policy", "RateLimit"} <= set(responses["200"]["headers"])
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert "Retry-After" in responses["503"]["headers"]
    assert "RateLimit" not in responses["401"]["headers"]


def test_rate_limited_flag_must_match_decorator(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from flask import Blueprint

    from flask_federation import blueprints, with_rate_limit
    from flask_federation.openapi import documented

    extra = Blueprint("extra_api", __name__)

    @extra.get("/limited")
    @documented("Limited without saying so", tag="Tenants")
    @with_rate_limit("5/minute")
    def limited() -> str:
        return ""

    app.register_blueprint(extra, url_prefix="/federation/extra")
    monkeypatch.setattr(blueprints, "API_BLUEPRINTS", (*blueprints.API_BLUEPRINTS, "extra_api"))
    with pytest.raises(RuntimeError, match=r"rate_limited=False\) does not match"):
        build_openapi(app)
