"""Extension wiring, configuration validation and the disabled switch."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, jsonify

from flask_federation import ConfigurationError, Federation, with_provider_auth

from .conftest import World, bearer


def _bare_app(**config: Any) -> Flask:
    app = Flask("bare")
    app.config.update(SECRET_KEY="s", SQLALCHEMY_DATABASE_URI="sqlite://", **config)
    return app


def test_init_app_twice_raises() -> None:
    app = _bare_app()
    federation = Federation(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        federation.init_app(app)


def test_extension_keeps_no_app() -> None:
    federation = Federation()
    first, second = _bare_app(), _bare_app()
    federation.init_app(first)
    federation.init_app(second)
    assert "federation" in first.extensions
    assert "federation" in second.extensions
    assert first not in vars(federation).values()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FEDERATION_ENABLED", "maybe"),
        ("FEDERATION_URL_PREFIX", "federation"),
        ("FEDERATION_URL_PREFIX", "/federation/"),
        ("FEDERATION_MAX_PAGE_SIZE", 0),
        ("FEDERATION_DEFAULT_PAGE_SIZE", "twenty"),
        ("FEDERATION_MAX_BODY_BYTES", -1),
        ("FEDERATION_ENABELD", True),
    ],
)
def test_invalid_setting_names_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        Federation(_bare_app(**{key: value}))


def test_default_page_size_above_max_rejected() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_DEFAULT_PAGE_SIZE"):
        Federation(_bare_app(FEDERATION_DEFAULT_PAGE_SIZE=50, FEDERATION_MAX_PAGE_SIZE=10))


def test_both_auth_modes_disabled_rejected() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_LEGACY_AUTH_ENABLED"):
        Federation(_bare_app(FEDERATION_LEGACY_AUTH_ENABLED=False))


def test_environment_strings_parsed() -> None:
    app = _bare_app(FEDERATION_ENABLED="true", FEDERATION_MAX_PAGE_SIZE="50")
    Federation(app)
    settings = app.extensions["federation"].settings
    assert settings.enabled is True
    assert settings.max_page_size == 50


def test_missing_database_uri_names_fix() -> None:
    app = Flask("no_db")
    with pytest.raises(ConfigurationError, match="SQLALCHEMY_DATABASE_URI"):
        Federation(app)


def test_constructor_config_overrides_app_config() -> None:
    app = _bare_app(FEDERATION_URL_PREFIX="/from-config")
    Federation(app, config={"FEDERATION_URL_PREFIX": "/from-constructor"})
    assert app.extensions["federation"].settings.url_prefix == "/from-constructor"


def test_disabled_routes_answer_federation_disabled(make_app: Any) -> None:
    app = make_app(FEDERATION_ENABLED=False)
    response = app.test_client().get("/federation/provider/v1/tenants")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "federation_disabled"
    assert response.json["error"]["request_id"] == response.headers["X-Request-ID"]


def test_disabled_keeps_decorators_on_host_routes(make_app: Any) -> None:
    app = make_app(FEDERATION_ENABLED=False)

    @app.get("/host/report")
    @with_provider_auth("tenants:read")
    def report() -> Any:
        return jsonify(ok=True)

    with app.app_context():
        world = World()
        client = app.test_client()
        assert client.get("/host/report", headers=bearer(world.key_a)).status_code == 200
        assert client.get("/host/report").status_code == 401


def test_custom_prefix_mounts_routes(make_app: Any) -> None:
    app = make_app(FEDERATION_URL_PREFIX="/partners/api")
    with app.app_context():
        world = World()
        response = app.test_client().get("/partners/api/provider/v1/tenants", headers=bearer(world.key_a))
        assert response.status_code == 200


def test_host_error_handlers_do_not_replace_envelope(make_app: Any) -> None:
    app = make_app()

    @app.errorhandler(404)
    def host_not_found(error: Exception) -> Any:
        return "host page", 404

    @app.errorhandler(401)
    def host_unauthorized(error: Exception) -> Any:
        return "host login page", 401

    @app.errorhandler(Exception)
    def host_anything(error: Exception) -> Any:
        return "host error page", 500

    client = app.test_client()
    assert client.get("/federation/no-such-route").json["error"]["code"] == "not_found"
    assert client.get("/federation/provider/v1/tenants").json["error"]["code"] == "unauthorized"
    with app.app_context():
        world = World()
        missing = client.get("/federation/provider/v1/tenants/ten_missing", headers=bearer(world.key_a))
        assert missing.json["error"]["code"] == "not_found"
    assert client.get("/elsewhere").data == b"host page"


def test_unexpected_error_is_enveloped_500(
    app: Flask, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from flask_federation.services import tenants

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(tenants, "list_tenants", explode)
    response = app.test_client().get("/federation/provider/v1/tenants", headers=bearer(world.key_a))
    assert response.status_code == 500
    assert response.json["error"]["code"] == "internal_error"
    assert "database on fire" not in response.get_data(as_text=True)
    assert response.json["error"]["request_id"] in caplog.text


def test_method_not_allowed_has_allow_header(client: Any) -> None:
    response = client.delete("/federation/provider/v1/tenants")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_request_id_echoed_when_valid(client: Any) -> None:
    response = client.get("/federation/provider/v1/tenants", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert response.json["error"]["request_id"] == "abc-123"


@pytest.mark.parametrize("bad_id", ["a" * 200, "bad id", "x\u00e9", "semi;colon"])
def test_request_id_replaced_when_invalid(client: Any, bad_id: str) -> None:
    response = client.get("/federation/provider/v1/tenants", headers={"X-Request-ID": bad_id})
    assert response.headers["X-Request-ID"] != bad_id
    assert response.headers["X-Request-ID"].startswith("req_")
