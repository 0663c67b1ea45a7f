"""OIDC settings: start-up validation, secrets kept out of messages, and what init_app wires."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from flask import Flask

from flask_federation import ConfigurationError, Federation
from flask_federation.config import load_settings
from flask_federation.redirects import is_local_path, safe_next_path

CLIENT_SECRET = "client-secret-that-must-never-appear-anywhere"


def closed_loopback_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens, so any request to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    return f"http://127.0.0.1:{port}"


def oidc_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "FEDERATION_OIDC_ENABLED": True,
        "FEDERATION_OIDC_ISSUER": "https://login.example.test",
        "FEDERATION_OIDC_PROVIDER_AUDIENCE": "urn:federation:provider",
        "FEDERATION_OIDC_DEVELOPER_AUDIENCE": "urn:federation:developer",
    }
    settings.update(overrides)
    return {key: value for key, value in settings.items() if value is not None}


def bare_app(**config: Any) -> Flask:
    app = Flask("oidc_config")
    app.config.update(SECRET_KEY="s", SQLALCHEMY_DATABASE_URI="sqlite://", FEDERATION_ENABLED=True, **config)
    return app


@pytest.mark.parametrize(
    "missing",
    ["FEDERATION_OIDC_ISSUER", "FEDERATION_OIDC_PROVIDER_AUDIENCE", "FEDERATION_OIDC_DEVELOPER_AUDIENCE"],
)
def test_oidc_without_required_key_names_it(missing: str) -> None:
    with pytest.raises(ConfigurationError, match=missing):
        load_settings(oidc_settings(**{missing: None}))


def test_oidc_keys_ignored_while_disabled() -> None:
    settings = load_settings({"FEDERATION_OIDC_ISSUER": "http://127.0.0.1:9"})

    assert settings.oidc_enabled is False


def test_same_audience_twice_rejected() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_DEVELOPER_AUDIENCE"):
        load_settings(oidc_settings(FEDERATION_OIDC_DEVELOPER_AUDIENCE="urn:federation:provider"))


def test_http_issuer_needs_require_https_off() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_REQUIRE_HTTPS"):
        load_settings(oidc_settings(FEDERATION_OIDC_ISSUER="http://127.0.0.1:9"))

    settings = load_settings(oidc_settings(FEDERATION_OIDC_ISSUER="http://127.0.0.1:9", FEDERATION_OIDC_REQUIRE_HTTPS="false"))
    assert settings.oidc_issuer == "http://127.0.0.1:9"


def test_http_post_logout_redirect_rejected() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_POST_LOGOUT_REDIRECT_URI"):
        load_settings(oidc_settings(FEDERATION_OIDC_POST_LOGOUT_REDIRECT_URI="http://app.example.test/bye"))


@pytest.mark.parametrize("issuer", ["login.example.test", "ftp://login.example.test", "https://", "https://a b"])
def test_issuer_must_be_absolute_url(issuer: str) -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_ISSUER"):
        load_settings(oidc_settings(FEDERATION_OIDC_ISSUER=issuer))


@pytest.mark.parametrize("missing", ["FEDERATION_OIDC_CLIENT_ID", "FEDERATION_OIDC_CLIENT_SECRET"])
def test_login_without_client_credentials_names_key(missing: str) -> None:
    settings = oidc_settings(
        FEDERATION_OIDC_LOGIN_ENABLED=True,
        FEDERATION_OIDC_CLIENT_ID="federation-test",
        FEDERATION_OIDC_CLIENT_SECRET=CLIENT_SECRET,
    )
    del settings[missing]

    with pytest.raises(ConfigurationError, match=missing):
        load_settings(settings)


def test_login_without_oidc_rejected() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_LOGIN_ENABLED"):
        load_settings({"FEDERATION_OIDC_LOGIN_ENABLED": True})


def test_login_without_secret_key_rejected() -> None:
    app = Flask("no_secret_key")
    app.config.update(
        SQLALCHEMY_DATABASE_URI="sqlite://",
        **oidc_settings(
            FEDERATION_OIDC_LOGIN_ENABLED=True,
            FEDERATION_OIDC_CLIENT_ID="federation-test",
            FEDERATION_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        ),
    )

    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        Federation(app)


@pytest.mark.parametrize(
    "algorithms", ["HS256", "none", "RS256,HS512", [], "RS257", ["RS256", "None"]], ids=repr
)
def test_symmetric_or_unknown_algorithms_rejected(algorithms: Any) -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_ALGORITHMS"):
        load_settings(oidc_settings(FEDERATION_OIDC_ALGORITHMS=algorithms))


def test_algorithms_from_environment_string() -> None:
    settings = load_settings(oidc_settings(FEDERATION_OIDC_ALGORITHMS="RS256, ES256"))

    assert settings.oidc_algorithms == ("RS256", "ES256")


def test_scope_map_defaults_to_catalogue_names() -> None:
    scope_map = load_settings({}).oidc_scope_map

    assert scope_map["tenants:read"] == ("tenants:read",)
    assert scope_map["diagnostics:read"] == ("diagnostics:read",)
    assert set(scope_map) == {"tenants:read", "tenants:write", "audit:read", "diagnostics:read"}


def test_scope_map_from_json_string() -> None:
    settings = load_settings({"FEDERATION_OIDC_SCOPE_MAP": '{"partner.read": ["tenants:read", "audit:read"], "diag": "diagnostics:read"}'})

    assert settings.oidc_scope_map == {"partner.read": ("tenants:read", "audit:read"), "diag": ("diagnostics:read",)}


@pytest.mark.parametrize(
    "scope_map",
    ['{"partner.read": ["tenants:delete"]}', "not json", '["tenants:read"]', {"x": 5}, {"": "tenants:read"}],
    ids=["unknown entitlement", "not json", "list", "number", "empty scope"],
)
def test_invalid_scope_map_rejected(scope_map: Any) -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_SCOPE_MAP"):
        load_settings({"FEDERATION_OIDC_SCOPE_MAP": scope_map})


@pytest.mark.parametrize("path", ["//evil.example", "https://evil.example/", "dashboard", "/a b"])
def test_default_next_must_be_local(path: str) -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_OIDC_DEFAULT_NEXT"):
        load_settings({"FEDERATION_OIDC_DEFAULT_NEXT": path})


def test_storage_uri_scheme_checked() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_AUTH_USAGE_STORAGE_URI"):
        load_settings({"FEDERATION_AUTH_USAGE_STORAGE_URI": "http://127.0.0.1:6379"})


def test_client_secret_never_shown() -> None:
    settings = load_settings(
        oidc_settings(
            FEDERATION_OIDC_LOGIN_ENABLED=True,
            FEDERATION_OIDC_CLIENT_ID="federation-test",
            FEDERATION_OIDC_CLIENT_SECRET=CLIENT_SECRET,
            FEDERATION_CURSOR_SECRET="cursor-secret-value",
        )
    )
    assert CLIENT_SECRET not in repr(settings)
    assert "cursor-secret-value" not in repr(settings)
    assert settings.oidc_client_secret == CLIENT_SECRET

    with pytest.raises(ConfigurationError) as caught:
        load_settings({"FEDERATION_OIDC_CLIENT_SECRET": [CLIENT_SECRET]})
    assert CLIENT_SECRET not in str(caught.value)


def test_start_up_does_not_contact_provider(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_federation")
    app = bare_app(**oidc_settings(FEDERATION_OIDC_ISSUER=closed_loopback_url(), FEDERATION_OIDC_REQUIRE_HTTPS=False))
    Federation(app)

    assert "oidc" in app.extensions["federation"].components
    assert "OpenID provider" not in caplog.text


def login_settings(**overrides: Any) -> dict[str, Any]:
    return oidc_settings(
        FEDERATION_OIDC_LOGIN_ENABLED=True,
        FEDERATION_OIDC_CLIENT_ID="federation-test",
        FEDERATION_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        **overrides,
    )


def test_login_hardens_session_cookie() -> None:
    app = bare_app(**login_settings())
    Federation(app)

    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_login_keeps_host_cookie_settings() -> None:
    app = bare_app(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=False, TESTING=True, **login_settings())
    Federation(app)

    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is False
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_bearer_only_leaves_session_cookie_alone() -> None:
    app = bare_app(**oidc_settings())
    Federation(app)

    assert app.config["SESSION_COOKIE_SAMESITE"] is None
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_login_routes_absent_without_login() -> None:
    app = bare_app(**oidc_settings())
    Federation(app)
    response = app.test_client().get("/federation/oidc/provider/login")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_login_with_provider_down_answers_503() -> None:
    app = bare_app(
        TESTING=True,
        **login_settings(
            FEDERATION_OIDC_ISSUER=closed_loopback_url(),
            FEDERATION_OIDC_REQUIRE_HTTPS=False,
            FEDERATION_OIDC_HTTP_TIMEOUT_SECONDS=2,
        ),
    )
    Federation(app)
    response = app.test_client().get("/federation/oidc/provider/login")

    assert response.status_code == 503
    assert response.json["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "30"


def test_unknown_login_audience_is_404() -> None:
    app = bare_app(TESTING=True, **login_settings())
    Federation(app)
    response = app.test_client().get("/federation/oidc/partner/login")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# --- next parameter --------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["/", "/dashboard", "/tenants?status=active&x=1", "/a/b#section", "/%2F%2Fevil.example", "/.well-known/x"],
)
def test_local_paths_accepted(value: str) -> None:
    assert is_local_path(value)
    assert safe_next_path(value, "/home") == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "dashboard",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\nSet-Cookie: x=1",
        "/ spaced",
        "/caf\u00e9",
        "/\x00",
        "/\x7f",
        "/" + "a" * 2048,
    ],
    ids=repr,
)
def test_unsafe_next_falls_back(value: str | None) -> None:
    assert safe_next_path(value, "/home") == "/home"
