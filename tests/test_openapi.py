"""The OpenAPI document: served, valid, complete, and equal to the committed copy."""

from __future__ import annotations

import json
from pathlib import Path

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
