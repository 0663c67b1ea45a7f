"""Hostile input found by probing a running server: each case once gave a 500 or stored invalid data."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask

from flask_federation import ConfigurationError, Federation
from flask_federation.auth.oidc_claims import claimed_subject_id, token_credential_id
from flask_federation.request_id import is_valid_request_id

from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"


def _write_headers(key: str) -> dict[str, str]:
    return {**bearer(key), "Idempotency-Key": uuid.uuid4().hex}


@pytest.mark.parametrize("field, value", [("slug", "a-one\n"), ("region", "eu-west-1\n")])
def test_trailing_newline_rejected_on_create(client: Any, world: World, field: str, value: str) -> None:
    # Python's "$" also matches before a final newline, which once let "a-one\n" past the slug
    # pattern and around the per-provider uniqueness of "a-one".
    body = {"name": "Shop", "slug": "shop", "region": "eu-west-1", field: value}
    response = client.post(TENANTS, json=body, headers=_write_headers(world.key_a))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == {field}


def test_trailing_newline_rejected_on_update(client: Any, world: World) -> None:
    response = client.patch(
        f"{TENANTS}/{world.tenant_a.public_id}", json={"slug": "renamed\n"}, headers=_write_headers(world.key_a)
    )
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"slug"}


def test_request_id_with_trailing_newline_invalid() -> None:
    assert is_valid_request_id("abc")
    assert not is_valid_request_id("abc\n")


def test_claim_with_trailing_newline_unused() -> None:
    assert claimed_subject_id({"provider_id": "prv_abc"}, "provider_id") == "prv_abc"
    assert claimed_subject_id({"provider_id": "prv_abc\n"}, "provider_id") is None
    assert token_credential_id({"jti": "abc\n"}, "token").startswith("sha256:")


@pytest.mark.parametrize(
    "key, value",
    [
        ("FEDERATION_URL_PREFIX", "/federation\n"),
        ("FEDERATION_RATELIMIT_KEY_PREFIX", "federation\n"),
        ("FEDERATION_RATELIMIT_POLICIES", {"writes\n": "10/minute"}),
    ],
)
def test_setting_with_trailing_newline_rejected(key: str, value: Any) -> None:
    app = Flask("federation_test_host")
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", SECRET_KEY="test", **{key: value})
    with pytest.raises(ConfigurationError, match=key):
        Federation(app)


@pytest.fixture(params=["POST", "PATCH"])
def write_route(request: pytest.FixtureRequest, world: World) -> tuple[str, str]:
    if request.param == "POST":
        return "POST", TENANTS

    return "PATCH", f"{TENANTS}/{world.tenant_a.public_id}"


def _send_raw(client: Any, world: World, route: tuple[str, str], fields: str) -> Any:
    method, path = route
    slug = "" if method == "PATCH" else '"slug": "shop", "region": "eu-west-1", '
    headers = {**_write_headers(world.key_a), "Content-Type": "application/json"}
    return client.open(path, method=method, data="{" + slug + fields + "}", headers=headers)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_constant_rejected(
    client: Any, world: World, write_route: tuple[str, str], constant: str
) -> None:
    response = _send_raw(client, world, write_route, f'"name": "Shop", "metadata": {{"seats": {constant}}}')
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"
    assert constant in response.json["error"]["message"]


@pytest.mark.parametrize(
    "fields, field",
    [
        ('"name": "Sh\\u0000op"', "name"),
        ('"name": "Sh\\ud800op"', "name"),
        ('"name": "Shop", "metadata": {"plan": "te\\u0000am"}', "metadata"),
        ('"name": "Shop", "metadata": {"pl\\u0000an": "team"}', "metadata"),
        ('"name": "Shop", "metadata": {"plan": ["\\udfff"]}', "metadata"),
        ('"name": "Shop", "metadata": {"plan": {"te\\ud83dam": 1}}', "metadata"),
        ('"name": "Shop", "metadata": {"seats": 1e400}', "metadata"),
        ('"name": "Shop", "metadata": {"seats": [-1e400]}', "metadata"),
    ],
    ids=["nul-name", "surrogate-name", "nul-value", "nul-key", "surrogate-in-list", "surrogate-key", "inf", "minus-inf"],
)
def test_unstorable_text_or_number_rejected(
    client: Any, world: World, write_route: tuple[str, str], fields: str, field: str
) -> None:
    # PostgreSQL text and JSONB reject NUL, UTF-8 cannot encode a lone surrogate, and JSON has no
    # infinity: each once reached the database and failed there with a 500.
    response = _send_raw(client, world, write_route, fields)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == {field}

    listed = client.get(TENANTS, headers=bearer(world.key_a)).json["data"]["items"]
    assert [tenant["name"] for tenant in listed] == ["A one"]


def test_unstorable_metadata_named_by_path(client: Any, world: World) -> None:
    response = _send_raw(client, world, ("POST", TENANTS), '"name": "Shop", "metadata": {"plan": {"tiers": ["a\\u0000"]}}')
    message = response.json["error"]["details"]["metadata"][0]
    assert "['plan']['tiers'][0]" in message
    assert "NUL" in message


def test_audit_action_with_nul_rejected(client: Any, world: World) -> None:
    response = client.get("/federation/provider/v1/audit?action=tenant.list%00", headers=bearer(world.key_a))
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"action"}


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize("tenant_id", ["ten_%00", "%00", "ten_%ED%A0%80"], ids=["nul", "only-nul", "surrogate-bytes"])
def test_unstorable_tenant_id_not_found(client: Any, world: World, method: str, tenant_id: str) -> None:
    # PostgreSQL rejects NUL even in a query parameter, which once made this lookup a 500.
    headers = {**_write_headers(world.key_a), "Content-Type": "application/json"}
    response = client.open(f"{TENANTS}/{tenant_id}", method=method, data='{"name": "x"}', headers=headers)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_long_tenant_id_not_echoed_whole(client: Any, world: World) -> None:
    response = client.get(f"{TENANTS}/ten_{'a' * 5000}", headers=bearer(world.key_a))
    assert response.status_code == 404
    assert len(response.json["error"]["message"]) < 200


@pytest.mark.parametrize(
    "query, field",
    [("since=9999-12-31T23:59:59-14:00", "since"), ("until=0001-01-01T00:00:00%2B14:00", "until")],
)
@pytest.mark.parametrize("path", ["/federation/provider/v1/audit", "/federation/developer/v1/audit"])
def test_audit_time_out_of_range_rejected(client: Any, world: World, path: str, query: str, field: str) -> None:
    # Both times are valid ISO 8601, but in UTC they fall outside years 1 to 9999.
    key = world.key_dev if "developer" in path else world.key_a
    response = client.get(f"{path}?{query}", headers=bearer(key))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert set(response.json["error"]["details"]) == {field}


def _echo_cases(world: World) -> list[tuple[str, str, dict[str, Any] | None]]:
    key = world.key_b
    return [
        ("GET", f"{TENANTS}/{key}", None),
        ("GET", f"{TENANTS}?{key}=1", None),
        ("POST", TENANTS, {"name": "Shop", "slug": "shop", "region": "eu-west-1", key: "x"}),
        ("POST", TENANTS, {"name": "Shop", "slug": "shop", "region": "eu-west-1", "metadata": {key: "\u0000"}}),
        ("GET", f"/federation/docs/assets/{key}", None),
    ]


@pytest.mark.parametrize(
    "case", range(5), ids=["tenant-id", "query-name", "field-name", "metadata-key", "asset-name"]
)
def test_error_never_echoes_api_key(client: Any, world: World, case: int) -> None:
    # A client that pastes its key into a path, a field name or a parameter must not get it back,
    # because error bodies end up in client and proxy logs.
    method, path, body = _echo_cases(world)[case]
    response = client.open(path, method=method, json=body, headers=_write_headers(world.key_a))
    assert response.status_code >= 400
    assert response.json["ok"] is False
    assert world.key_b not in response.get_data(as_text=True)
    assert world.key_b.split("_")[2][:8] not in response.get_data(as_text=True)


def test_error_never_echoes_jwt(client: Any, world: World) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    response = client.get(f"{TENANTS}/{token}", headers=bearer(world.key_a))
    assert response.status_code == 404
    assert "eyJzdWIiOiJhbGljZSJ9" not in response.get_data(as_text=True)


def test_two_authorization_values_named(client: Any, world: World) -> None:
    # WSGI servers join repeated headers with commas, which no key or token contains.
    response = client.get(TENANTS, headers={"Authorization": f"Bearer {world.key_a}, Bearer {world.key_b}"})
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    assert "one Authorization header" in response.json["error"]["message"]


def test_malformed_key_message_says_what_to_do(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_a[:-3]))
    assert response.status_code == 401
    assert "as it was issued" in response.json["error"]["message"]


def test_unmatched_route_points_to_openapi(client: Any) -> None:
    response = client.get("/federation/provider/v1/tenant")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert "/federation/openapi.json" in response.json["error"]["message"]


@pytest.mark.parametrize("path", [TENANTS, "/federation/developer/v1/diagnostics", "/federation/openapi.json"])
def test_options_has_no_body(client: Any, path: str) -> None:
    # Flask's automatic answer is 200 with an empty text/html body, which no envelope parser accepts.
    response = client.options(path)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert "GET" in response.headers["Allow"]
    assert response.headers["X-Request-ID"].startswith("req_")


@pytest.mark.parametrize("path", ["/federation/provider/v1//tenants", f"{TENANTS}/%2F%7B%7D", "/federation//openapi.json"])
def test_repeated_slashes_get_envelope(client: Any, world: World, path: str) -> None:
    # Werkzeug answers these with a 308 to the merged path and an HTML body; the API keeps its envelope.
    response = client.get(path, headers=bearer(world.key_a))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert "repeated slashes" in response.json["error"]["message"]


def _signed_cursor(app: Flask, payload: Any) -> str:
    from itsdangerous import URLSafeSerializer

    return str(URLSafeSerializer(app.config["SECRET_KEY"], salt="flask-federation.cursor.v1").dumps(payload))


@pytest.mark.parametrize(
    "position, row_id",
    [("9999-12-31T23:59:59-14:00", 1), ("2020-01-01T00:00:00+00:00", 2**70), ("2020-01-01T00:00:00+00:00", -1)],
    ids=["time-overflow", "huge-row-id", "negative-row-id"],
)
def test_signed_cursor_out_of_range_rejected(
    app: Flask, client: Any, world: World, position: str, row_id: int
) -> None:
    # Only a holder of the signing secret can build these, but they must still fail as a 400, not a 500.
    from flask_federation.services.pagination import _binding

    cursor = _signed_cursor(app, [_binding(world.provider_a.public_id, {"status": None}), position, row_id])
    response = client.get(f"{TENANTS}?cursor={cursor}", headers=bearer(world.key_a))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_cursor"


def test_signed_cursor_largest_row_id_accepted(app: Flask, client: Any, world: World) -> None:
    # Tenant ids are 32-bit on PostgreSQL, but comparing them with a 64-bit parameter still works.
    from flask_federation.services.pagination import _binding

    cursor = _signed_cursor(app, [_binding(world.provider_a.public_id, {"status": None}), "2999-01-01T00:00:00+00:00", 2**63 - 1])
    response = client.get(f"{TENANTS}?cursor={cursor}", headers=bearer(world.key_a))
    assert response.status_code == 200
    assert [tenant["name"] for tenant in response.json["data"]["items"]] == ["A one"]
