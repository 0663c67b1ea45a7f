"""Routes about the API itself: ``{prefix}/openapi.json``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from ..openapi import build_openapi
from .errors import install_error_handlers

NAME = "federation_meta"


def create_meta_blueprint() -> Blueprint:
    blueprint = Blueprint(NAME, __name__)
    install_error_handlers(blueprint)

    @blueprint.get("/openapi.json")
    def openapi_document() -> Response:
        return jsonify(build_openapi(current_app))

    return blueprint
