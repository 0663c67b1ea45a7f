"""Routes about the API itself: ``{prefix}/openapi.json`` and the API reference at ``{prefix}/docs``."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory, url_for
from flask.blueprints import BlueprintSetupState

from ..docs_ui import INIT_SCRIPT, PAGE_HEADERS, SWAGGER_ASSETS, render_page, require_swagger_ui
from ..errors import NotFound
from ..openapi import build_openapi
from ..state import get_state
from .errors import install_error_handlers

NAME = "federation_meta"

# Swagger UI files change only with the installed package version; an hour keeps reloads cheap.
ASSET_MAX_AGE = 3600


def _check_docs_assets(setup: BlueprintSetupState) -> None:
    # Fails init_app, like an invalid setting, instead of the first visit to the page.
    app = setup.app
    assert isinstance(app, Flask)
    if get_state(app).settings.api_docs == "swagger":
        require_swagger_ui()


def _docs_enabled() -> None:
    if get_state().settings.api_docs == "off":
        raise NotFound("The API reference is turned off on this server (FEDERATION_API_DOCS is 'off').")


def create_meta_blueprint() -> Blueprint:
    blueprint = Blueprint(NAME, __name__)
    install_error_handlers(blueprint)
    blueprint.record_once(_check_docs_assets)

    @blueprint.get("/openapi.json")
    def openapi_document() -> Response:
        return jsonify(build_openapi(current_app))

    @blueprint.get("/docs")
    def api_reference() -> Response:
        _docs_enabled()
        page = render_page(
            document_url=url_for(".openapi_document"),
            assets_url=url_for(".api_reference") + "/assets",
            init_script_url=url_for(".api_reference_script"),
            title="flask-federation API reference",
        )
        return current_app.response_class(page, mimetype="text/html", headers=PAGE_HEADERS)

    @blueprint.get("/docs/init.js")
    def api_reference_script() -> Response:
        _docs_enabled()
        return current_app.response_class(INIT_SCRIPT, mimetype="text/javascript", headers={"X-Content-Type-Options": "nosniff"})

    @blueprint.get("/docs/assets/<name>")
    def api_reference_asset(name: str) -> Response:
        _docs_enabled()
        if name not in SWAGGER_ASSETS:
            raise NotFound(f"The API reference has no asset {name!r}.")

        response = send_from_directory(require_swagger_ui(), name, max_age=ASSET_MAX_AGE)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return blueprint
