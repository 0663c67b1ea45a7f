"""The interactive API reference at {prefix}/docs: served offline, locked down, and rendered by Chromium."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from flask import Flask

from examples.host_app.app import create_app
from flask_federation import ConfigurationError, Federation, docs_ui
from flask_federation.demo import seed_demo
from flask_federation.models import metadata
from flask_federation.state import get_state

from .browser import load_page, require_chromium
from .live_server import serve

DOCS = "/federation/docs"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "api-reference.png"


class _OperationCollector(HTMLParser):
    """A parser collecting (METHOD, path) of every operation block Swagger UI rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: set[tuple[str, str]] = set()
        self._in_method = False
        self._method = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if "opblock-summary-method" in classes:
            self._in_method = True
            self._method = ""
        if "opblock-summary-path" in classes and attributes.get("data-path"):
            self.operations.add((self._method.strip().upper(), str(attributes["data-path"])))

    def handle_data(self, data: str) -> None:
        if self._in_method:
            self._method += data

    def handle_endtag(self, tag: str) -> None:
        self._in_method = False


def _rendered_operations(dom: str) -> set[tuple[str, str]]:
    collector = _OperationCollector()
    collector.feed(dom)
    return collector.operations


@pytest.fixture
def example_server(tmp_path: Path) -> Iterator[str]:
    """Serve the example host app, with seeded demo data in a fresh SQLite file, from a real server."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/reference.db", "TESTING": True})
    with app.app_context():
        metadata.create_all(get_state().db.engine)
        seed_demo(providers=2, tenants=40, developers=1)
        get_state().session.remove()

    with serve(app) as base_url:
        yield base_url

    with app.app_context():
        get_state().db.engine.dispose()


def test_reference_lists_every_operation(example_server: str, tmp_path: Path) -> None:
    chromium = require_chromium()
    document = requests.get(f"{example_server}/federation/openapi.json", timeout=10).json()
    expected = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    assert expected

    page = load_page(chromium, f"{example_server}{DOCS}", tmp_path / "profile-dom")
    assert _rendered_operations(page.dom) == expected
    assert document["info"]["title"] in page.dom
    violations = [line for line in page.console if "Content Security Policy" in line]
    assert violations == []


def test_reference_expands_operation_without_csp_violation(example_server: str, tmp_path: Path) -> None:
    chromium = require_chromium()
    page = load_page(chromium, f"{example_server}{DOCS}#/Tenants/get_provider_v1_tenants", tmp_path / "profile-open")
    assert 'class="opblock opblock-get is-open" id="operations-Tenants-get_provider_v1_tenants"' in page.dom
    # The expanded operation shows its parameters and the example of its success response.
    assert "next_cursor" in page.dom
    assert 'data-param-name="cursor"' in page.dom
    violations = [line for line in page.console if "Content Security Policy" in line]
    assert violations == []


def test_reference_screenshot(example_server: str, tmp_path: Path) -> None:
    chromium = require_chromium()
    screenshot = tmp_path / "api-reference.png"
    load_page(chromium, f"{example_server}{DOCS}", tmp_path / "profile-shot", screenshot=screenshot, window_size="1280,1000")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, SCREENSHOT)


def test_page_headers_and_links(client: Flask) -> None:
    response = client.get(DOCS)  # type: ignore[attr-defined]
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = response.get_data(as_text=True)
    assert 'data-openapi-url="/federation/openapi.json"' in page
    assert "<script>" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_assets_come_from_the_package(client: Flask) -> None:
    for name in sorted(docs_ui.SWAGGER_ASSETS):
        response = client.get(f"{DOCS}/assets/{name}")  # type: ignore[attr-defined]
        assert response.status_code == 200, name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "max-age=3600" in response.headers["Cache-Control"]
        response.close()

    script = client.get(f"{DOCS}/init.js")  # type: ignore[attr-defined]
    assert script.status_code == 200
    assert script.mimetype == "text/javascript"
    assert "SwaggerUIBundle" in script.get_data(as_text=True)


@pytest.mark.parametrize("name", ["index.html", "swagger-ui-bundle.js.map", "..%2FVERSION", "LICENSE"])
def test_other_files_not_served(client: Flask, name: str) -> None:
    response = client.get(f"{DOCS}/assets/{name}")  # type: ignore[attr-defined]
    assert response.status_code == 404
    assert response.json["ok"] is False
    assert response.json["error"]["code"] == "not_found"


def test_swagger_ui_version_supports_openapi_31() -> None:
    version = docs_ui.swagger_ui_version()
    assert version is not None
    assert int(version.lstrip("v").split(".")[0]) >= 5, "Swagger UI 4 cannot render OpenAPI 3.1 documents"


def test_docs_off_answers_404(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_API_DOCS="off")
    client = app.test_client()
    for path in (DOCS, f"{DOCS}/init.js", f"{DOCS}/assets/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json["error"]["code"] == "not_found", path
        assert "FEDERATION_API_DOCS" in response.json["error"]["message"], path
    assert client.get("/federation/openapi.json").status_code == 200


def test_docs_under_custom_prefix(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_URL_PREFIX="/partners")
    page = app.test_client().get("/partners/docs").get_data(as_text=True)
    assert 'data-openapi-url="/partners/openapi.json"' in page
    assert 'src="/partners/docs/assets/swagger-ui-bundle.js"' in page


def test_docs_disabled_federation_answers_404(make_app: Callable[..., Flask]) -> None:
    app = make_app(FEDERATION_ENABLED=False)
    response = app.test_client().get(DOCS)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "federation_disabled"


def test_invalid_docs_mode_rejected() -> None:
    app = Flask("docs_mode")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_API_DOCS="redoc")
    with pytest.raises(ConfigurationError, match="FEDERATION_API_DOCS must be one of swagger, off"):
        Federation(app)


def test_missing_swagger_package_fails_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docs_ui, "swagger_ui_dist", lambda: None)
    app = Flask("docs_missing")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://")
    with pytest.raises(ConfigurationError, match=r"pip install flask-swagger-ui"):
        Federation(app)

    app = Flask("docs_missing_off")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_API_DOCS="off")
    Federation(app)


def test_document_links_back_from_noscript(client: Flask) -> None:
    page = client.get(DOCS).get_data(as_text=True)  # type: ignore[attr-defined]
    assert '<a href="/federation/openapi.json">' in page
    assert json.loads(client.get("/federation/openapi.json").get_data(as_text=True))["openapi"] == "3.1.0"  # type: ignore[attr-defined]
