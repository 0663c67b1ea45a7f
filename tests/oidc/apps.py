"""Federation apps wired to an OpenID provider, and a real HTTP server to run them on."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_federation import admin
from flask_federation.models import Developer, Provider
from flask_federation.state import get_state

from .idp import CLIENT_ID, CLIENT_SECRET, DEVELOPER_AUDIENCE, PROVIDER_AUDIENCE


def oidc_config(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Return the settings that point an app at ``issuer`` with the local IdP's audiences."""
    config: dict[str, Any] = {
        "FEDERATION_OIDC_ENABLED": True,
        "FEDERATION_OIDC_ISSUER": issuer,
        "FEDERATION_OIDC_PROVIDER_AUDIENCE": PROVIDER_AUDIENCE,
        "FEDERATION_OIDC_DEVELOPER_AUDIENCE": DEVELOPER_AUDIENCE,
        # The local IdP serves plain http on 127.0.0.1.
        "FEDERATION_OIDC_REQUIRE_HTTPS": False,
        "FEDERATION_OIDC_HTTP_TIMEOUT_SECONDS": 5,
    }
    config.update(overrides)
    return config


def login_config(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Return :func:`oidc_config` with browser login enabled for the local IdP's client."""
    return oidc_config(
        issuer,
        FEDERATION_OIDC_LOGIN_ENABLED=True,
        FEDERATION_OIDC_CLIENT_ID=CLIENT_ID,
        FEDERATION_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        **overrides,
    )


def create_provider_with_id(public_id: str, name: str) -> Provider:
    """Create a provider whose public id is ``public_id``, as the IdP's accounts name it."""
    provider = admin.create_provider(name)
    provider.public_id = public_id
    get_state().session.commit()
    return provider


def create_developer_with_id(public_id: str, name: str) -> Developer:
    developer = admin.create_developer(name)
    developer.public_id = public_id
    get_state().session.commit()
    return developer


class ServedApp:
    """A werkzeug HTTP server on a free 127.0.0.1 port that serves whichever app is mounted.

    The port is known before any app exists, so an IdP can be started with the
    callback URLs first and each test can mount its own app.
    """

    def __init__(self) -> None:
        self.app: Flask | None = None
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._dispatch)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None, "mount an app before sending requests"
        return self.app(environ, start_response)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
