"""The OpenAPI document: served, valid, complete, and equal to the committed copy."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate

from flask_federation.blueprints import API_BLUEPRINTS
from flask_federation.openapi import build_openapi, render_openapi
from flask_federation.state import get_state
from scripts.render_openapi import render_default_document

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"
RELEASED = COMMITTED.with_name("openapi.released.json")


def test_document_is_valid(app: Flask) -> None:
    validate(build_openapi(app))  # type: ignore[arg-type]


def test_served_document_matches_generated(app: Flask) -> None:
    response = app.test_client().get("/federation/openapi.json")
    assert response.status_code == 200
    assert response.json == build_openapi(app)


def test_committed_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_default_document(), "run: python scripts/render_openapi.py --write"


def _api_routes(app: Flask) -> set[tuple[str, str]]:
    """Return (path relative to the prefix, METHOD) for every URL rule of the federation API blueprints."""
    prefix = get_state(app).settings.url_prefix
    routes: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] not in API_BLUEPRINTS:
            continue

        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule.removeprefix(prefix))
        routes.update((path, method) for method in (rule.methods or set()) - {"HEAD", "OPTIONS"})
    return routes


def _documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}


def test_every_api_route_documented(app: Flask) -> None:
    missing = _api_routes(app) - _documented_routes(build_openapi(app))
    assert not missing, f"routes without an OpenAPI operation: {sorted(missing)}"


def test_every_documented_route_exists(app: Flask) -> None:
    extra = _documented_routes(build_openapi(app)) - _api_routes(app)
    assert not extra, f"documented operations without a URL rule: {sorted(extra)}"


def test_committed_document_matches_routes(app: Flask) -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert _documented_routes(committed) == _api_routes(app)


def test_coverage_under_custom_prefix(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_URL_PREFIX="/partners/api")
    document = build_openapi(app)
    assert document["servers"] == [{"url": "/partners/api"}]
    assert _documented_routes(document) == _api_routes(app)
    assert ("/provider/v1/tenants", "GET") in _api_routes(app)


def test_committed_document_is_valid() -> None:
    validate(json.loads(COMMITTED.read_text(encoding="utf-8")))


def test_released_document_is_valid() -> None:
    validate(json.loads(RELEASED.read_text(encoding="utf-8")))


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


def test_write_routes_document_idempotency(app: Flask) -> None:
    document = build_openapi(app)
    writes = {("/provider/v1/tenants", "post"): "201", ("/provider/v1/tenants/{tenant_id}", "patch"): "200"}
    for (path, method), success in writes.items():
        operation = document["paths"][path][method]
        headers = [item for item in operation["parameters"] if item["in"] == "header"]
        assert [item["name"] for item in headers] == ["Idempotency-Key"], path
        assert headers[0]["required"] is True
        assert headers[0]["schema"]["maxLength"] == 255
        assert "Idempotent-Replayed" in operation["responses"][success]["headers"]
        assert {"400", "409", "422", "503"} <= set(operation["responses"]), path

    assert "Location" in document["paths"]["/provider/v1/tenants"]["post"]["responses"]["201"]["headers"]
    read = document["paths"]["/provider/v1/tenants"]["get"]
    assert all(item["in"] != "header" for item in read.get("parameters", []))
