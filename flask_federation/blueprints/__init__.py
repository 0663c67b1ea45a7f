"""The federation blueprints, built per app inside ``init_app``."""

from __future__ import annotations

from flask import Flask

from .developer import NAME as DEVELOPER_BLUEPRINT
from .developer import create_developer_blueprint
from .meta import NAME as META_BLUEPRINT
from .meta import create_meta_blueprint
from .oidc import NAME as OIDC_BLUEPRINT
from .oidc import create_oidc_blueprint
from .provider import NAME as PROVIDER_BLUEPRINT
from .provider import create_provider_blueprint

#: Names of the blueprints whose routes form the documented federation API.
API_BLUEPRINTS = (PROVIDER_BLUEPRINT, DEVELOPER_BLUEPRINT)


def register_blueprints(app: Flask, prefix: str) -> None:
    app.register_blueprint(create_provider_blueprint(), url_prefix=f"{prefix}/provider/v1")
    app.register_blueprint(create_developer_blueprint(), url_prefix=f"{prefix}/developer/v1")
    app.register_blueprint(create_meta_blueprint(), url_prefix=prefix)


def register_oidc_blueprint(app: Flask, prefix: str) -> None:
    """Register the browser login routes; only called when ``FEDERATION_OIDC_LOGIN_ENABLED`` is true."""
    app.register_blueprint(create_oidc_blueprint(), url_prefix=f"{prefix}/oidc")


__all__ = [
    "API_BLUEPRINTS",
    "DEVELOPER_BLUEPRINT",
    "META_BLUEPRINT",
    "OIDC_BLUEPRINT",
    "PROVIDER_BLUEPRINT",
    "register_blueprints",
    "register_oidc_blueprint",
]
