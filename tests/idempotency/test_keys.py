"""The Idempotency-Key header, the request fingerprint, the lookup key and the settings."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_federation import ConfigurationError, Federation
from flask_federation.errors import IdempotencyKeyInvalid, IdempotencyKeyMissing
from flask_federation.idempotency.keys import lookup_key, parse_key, request_fingerprint


def test_parse_key_accepts_bare_and_quoted() -> None:
    assert parse_key("8e03978e-40d5-43e8-bc93-6894a57f9324") == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert parse_key('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert parse_key('"a \\"quoted\\" key"') == 'a "quoted" key'
    assert parse_key("  padded  ") == "padded"
    assert parse_key("k" * 255) == "k" * 255


def test_parse_key_missing() -> None:
    with pytest.raises(IdempotencyKeyMissing):
        parse_key(None)


@pytest.mark.parametrize("value", ["", "   ", '""', "k" * 256, '"' + "k" * 256 + '"', "tab\there", "nul\x00", "\x7f", "caf\xe9"])
def test_parse_key_rejects_invalid(value: str) -> None:
    with pytest.raises(IdempotencyKeyInvalid):
        parse_key(value)


def _fingerprint(path: str = "/t", **kwargs: Any) -> str:
    app = Flask("fingerprint")
    with app.test_request_context(path, method=kwargs.pop("method", "POST"), **kwargs) as context:
        return request_fingerprint(context.request, context.request.get_data())


def test_fingerprint_ignores_query_order() -> None:
    assert _fingerprint("/t?a=1&b=2&a=0") == _fingerprint("/t?b=2&a=1&a=0")


@pytest.mark.parametrize(
    "other",
    [
        {"path": "/u", "data": b"{}", "content_type": "application/json"},
        {"path": "/t?a=1", "data": b"{}", "content_type": "application/json"},
        {"path": "/t", "data": b"{} ", "content_type": "application/json"},
        {"path": "/t", "data": b"{}", "content_type": "text/plain"},
        {"path": "/t", "data": b"{}", "content_type": "application/json; charset=latin-1"},
        {"path": "/t", "data": b"{}", "content_type": "application/json", "method": "PUT"},
    ],
)
def test_fingerprint_covers_each_part(other: dict[str, Any]) -> None:
    assert _fingerprint("/t", data=b"{}", content_type="application/json") != _fingerprint(**other)


def test_lookup_key_separates_scopes() -> None:
    base = lookup_key("provider:prv_a", "POST", "/tenants", "k")
    assert base == lookup_key("provider:prv_a", "POST", "/tenants", "k")
    assert base != lookup_key("provider:prv_b", "POST", "/tenants", "k")
    assert base != lookup_key("developer:prv_a", "POST", "/tenants", "k")
    assert base != lookup_key("provider:prv_a", "PATCH", "/tenants", "k")
    assert base != lookup_key("provider:prv_a", "POST", "/tenants/<tenant_id>", "k")
    assert base != lookup_key("provider:prv_a", "POST", "/tenant", "sk")


def _app(**config: Any) -> Flask:
    app = Flask("settings")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", **config)
    return app


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FEDERATION_IDEMPOTENCY_STORE", "memcached://127.0.0.1"),
        ("FEDERATION_IDEMPOTENCY_STORE", ""),
        ("FEDERATION_IDEMPOTENCY_TTL", 0),
        ("FEDERATION_IDEMPOTENCY_LEASE", "soon"),
        ("FEDERATION_IDEMPOTENCY_REDIS_PREFIX", ""),
    ],
)
def test_invalid_idempotency_setting_names_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        Federation(_app(**{key: value}))


def test_lease_must_be_shorter_than_ttl() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_IDEMPOTENCY_LEASE"):
        Federation(_app(FEDERATION_IDEMPOTENCY_LEASE=60, FEDERATION_IDEMPOTENCY_TTL=60))


def test_store_url_credentials_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Federation(_app(FEDERATION_IDEMPOTENCY_STORE="http://user:hunter2@127.0.0.1:6379"))

    assert "hunter2" not in str(raised.value)


def test_settings_from_environment_strings() -> None:
    app = _app(FEDERATION_IDEMPOTENCY_TTL="3600", FEDERATION_IDEMPOTENCY_LEASE="2.5")
    Federation(app)
    settings = app.extensions["federation"].settings
    assert settings.idempotency_ttl == 3600
    assert settings.idempotency_lease == 2.5
    assert settings.idempotency_store == "sql"
