"""Hostile input on every layer: ids, bodies, headers, cursors, page sizes and guessed API keys.

Each case must end in a documented 4xx envelope: never a 500, never another
provider's data, and never a header or log line that carries the attacker's bytes.
"""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from flask_federation.auth.api_keys import _checksum
from flask_federation.models import AuditEvent, Tenant
from flask_federation.state import get_state

from .conftest import StatementCounter, World, bearer

TENANTS = "/federation/provider/v1/tenants"
AUDIT = "/federation/provider/v1/audit"
NEW_TENANT = {"name": "Shop", "slug": "shop", "region": "eu-west-1"}


def _write_headers(key: str) -> dict[str, str]:
    return {**bearer(key), "Idempotency-Key": uuid.uuid4().hex}


def _assert_error(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json["ok"] is False
    if code is not None:
        assert response.json["error"]["code"] == code


def _tenant_rows() -> list[tuple[str, str, int]]:
    query = select(Tenant.public_id, Tenant.name, Tenant.provider_id).order_by(Tenant.id)
    return [tuple(row) for row in get_state().session.execute(query)]  # type: ignore[misc]


# Mass assignment


MASS_ASSIGNMENT = {
    "provider_id": "prv_other",
    "provider": {"public_id": "prv_other"},
    "public_id": "ten_chosen",
    "id": 1,
    "key_hash": "0" * 64,
    "__class__": "Provider",
    "region": "us-east-1",
}


def test_update_mass_assignment_rejected(client: Any, world: World) -> None:
    before = _tenant_rows()
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    for field, value in MASS_ASSIGNMENT.items():
        response = client.patch(path, json={"name": "Renamed", field: value}, headers=_write_headers(world.key_a))
        _assert_error(response, 422, "validation_error")
        assert field in response.json["error"]["details"], field

    assert _tenant_rows() == before


def test_create_cannot_target_other_provider(client: Any, world: World) -> None:
    body = {**NEW_TENANT, "provider_id": world.provider_b.public_id}
    response = client.post(TENANTS, json=body, headers=_write_headers(world.key_a))
    _assert_error(response, 422, "validation_error")
    count = select(func.count()).select_from(Tenant).where(Tenant.provider_id == world.provider_b.id)
    assert get_state().session.execute(count).scalar_one() == 1


# Hostile tenant ids


def _hostile_ids(world: World) -> list[str]:
    own = world.tenant_a.public_id
    return [
        "../../developer/v1/diagnostics",
        "..%2F..%2Fdeveloper%2Fv1%2Fdiagnostics",
        "' OR '1'='1",
        f"{own}' OR 1=1 --",
        f"{own}%",
        "%",
        "_" * 24,
        own.upper(),
        own.replace("t", "\u0442", 1),  # Cyrillic te, which renders like a Latin t.
        own + "\u200b",  # Zero-width space.
        own + "\x00",
        "\x00",
        own + " ",
        "x" * 5000,
        "\U0001f600",
    ]


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_hostile_ids_not_found(client: Any, world: World, method: str) -> None:
    for tenant_id in _hostile_ids(world):
        path = f"{TENANTS}/{urllib.parse.quote(tenant_id, safe='')}"
        response = client.open(path, method=method, json={"name": "X"}, headers=_write_headers(world.key_b))
        _assert_error(response, 404)
        assert world.tenant_a.slug not in response.get_data(as_text=True)
        assert "data" not in response.json

    # The caller's own tenant stays reachable only under its exact id.
    for tenant_id in _hostile_ids(world)[6:]:
        path = f"{TENANTS}/{urllib.parse.quote(tenant_id, safe='')}"
        _assert_error(client.get(path, headers=bearer(world.key_a)), 404)


def test_traversal_path_not_routed(client: Any, world: World) -> None:
    response = client.get(f"{TENANTS}/../../developer/v1/diagnostics", headers=bearer(world.key_a))
    # Dot segments reach the app unresolved, so the path matches no route: an unmatched-route 404.
    _assert_error(response, 404, "not_found")


# Text the database cannot store


UNSTORABLE_BODIES = [
    {**NEW_TENANT, "name": "Sh\x00op"},
    {**NEW_TENANT, "name": "Sh\ud800op"},
    {**NEW_TENANT, "metadata": {"note": "a\x00b"}},
    {**NEW_TENANT, "metadata": {"k\x00": "v"}},
    {**NEW_TENANT, "metadata": {"deep": [{"list": ["\udc00"]}]}},
]


def test_unstorable_text_rejected_on_create(client: Any, world: World) -> None:
    before = _tenant_rows()
    for body in UNSTORABLE_BODIES:
        response = client.post(TENANTS, json=body, headers=_write_headers(world.key_a))
        _assert_error(response, 422, "validation_error")

    assert _tenant_rows() == before


def test_unstorable_text_rejected_on_update(client: Any, world: World) -> None:
    path = f"{TENANTS}/{world.tenant_a.public_id}"
    response = client.patch(path, json={"name": "nul\x00"}, headers=_write_headers(world.key_a))
    _assert_error(response, 422, "validation_error")
    assert "NUL" in response.json["error"]["details"]["name"][0]


def test_unstorable_audit_filter_rejected(client: Any, world: World) -> None:
    response = client.get(AUDIT, query_string={"action": "tenant.read\x00"}, headers=bearer(world.key_a))
    _assert_error(response, 422, "validation_error")


# Headers


def test_header_with_crlf_not_echoed(client: Any, world: World) -> None:
    injected = "abc\r\nSet-Cookie: session=stolen"
    environ = {"HTTP_X_REQUEST_ID": injected, "HTTP_USER_AGENT": "agent\r\nX-Evil: 1"}
    response = client.get(TENANTS, headers=bearer(world.key_a), environ_base=environ)
    assert response.status_code == 200
    assert response.headers["X-Request-ID"].startswith("req_")
    assert "Set-Cookie" not in response.headers
    assert "X-Evil" not in response.headers
    event = get_state().session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert event.request_id == response.headers["X-Request-ID"]
    assert "\r" not in (event.user_agent or "")
    assert "\n" not in (event.user_agent or "")


def test_idempotency_key_with_crlf_rejected(client: Any, world: World) -> None:
    environ = {"HTTP_IDEMPOTENCY_KEY": "key\r\nX-Evil: 1"}
    response = client.post(TENANTS, json=NEW_TENANT, headers=bearer(world.key_a), environ_base=environ)
    _assert_error(response, 400, "idempotency_key_invalid")


OVERSIZED_HEADERS = [
    ("Authorization", 401, "unauthorized"),
    ("X-Request-ID", 201, None),
    ("User-Agent", 201, None),
    ("Idempotency-Key", 400, "idempotency_key_invalid"),
]


def test_oversized_headers_handled(client: Any, world: World) -> None:
    for name, status, code in OVERSIZED_HEADERS:
        headers = _write_headers(world.key_a)
        headers[name] = "Bearer " + "A" * 65536 if name == "Authorization" else "A" * 65536
        response = client.post(TENANTS, json={**NEW_TENANT, "slug": f"big-{name.lower()}"}, headers=headers)
        assert response.status_code == status, name
        assert response.mimetype == "application/json"
        if code is not None:
            assert response.json["error"]["code"] == code

        assert len(response.headers["X-Request-ID"]) <= 128
        event = get_state().session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
        assert len(event.user_agent or "") <= 512


# Cursors and page sizes


def _add_tenants(client: Any, key: str, count: int) -> None:
    for number in range(count):
        body = {"name": f"T{number}", "slug": f"t-{number}", "region": "eu-west-1"}
        assert client.post(TENANTS, json=body, headers=_write_headers(key)).status_code == 201


def test_cursor_reuse_rejected_across_routes_and_callers(client: Any, world: World) -> None:
    _add_tenants(client, world.key_a, 3)
    tenant_cursor = client.get(TENANTS, query_string={"limit": 1}, headers=bearer(world.key_a)).json["data"]
    audit_cursor = client.get(AUDIT, query_string={"limit": 1}, headers=bearer(world.key_a)).json["data"]
    assert tenant_cursor["next_cursor"] is not None
    assert audit_cursor["next_cursor"] is not None

    attempts = [
        (AUDIT, world.key_a, tenant_cursor["next_cursor"]),
        (TENANTS, world.key_a, audit_cursor["next_cursor"]),
        (AUDIT, world.key_b, audit_cursor["next_cursor"]),
        (TENANTS, world.key_b, tenant_cursor["next_cursor"]),
        (TENANTS, world.key_a, tenant_cursor["next_cursor"] + "\x00"),
        (TENANTS, world.key_a, tenant_cursor["next_cursor"][::-1]),
        # The cursor without its signature; rsplit, because a compressed payload starts with a dot.
        (TENANTS, world.key_a, tenant_cursor["next_cursor"].rsplit(".", 1)[0]),
    ]
    for path, key, cursor in attempts:
        response = client.get(path, query_string={"limit": 1, "cursor": cursor}, headers=bearer(key))
        _assert_error(response, 400, "invalid_cursor")

    # The same provider with another of its keys may continue its own walk.
    own = client.get(
        TENANTS, query_string={"limit": 1, "cursor": tenant_cursor["next_cursor"]}, headers=bearer(world.key_a_read_only)
    )
    assert own.status_code == 200


LIMIT_EXTREMES = ["0", "-1", "101", str(2**63), "9" * 400, "1e3", "1.5", "", "abc", "0x10"]


def test_limit_extremes(client: Any, world: World) -> None:
    for path in (TENANTS, AUDIT):
        for limit in LIMIT_EXTREMES:
            response = client.get(path, query_string={"limit": limit}, headers=bearer(world.key_a))
            _assert_error(response, 422, "validation_error")
            assert "limit" in response.json["error"]["details"], (path, limit)

        for limit in ("1", "100"):
            assert client.get(path, query_string={"limit": limit}, headers=bearer(world.key_a)).status_code == 200


# Guessing API keys


def _with_checksum(body: str) -> str:
    return body + _checksum(body)


def test_key_guesses_run_identical_statements(client: Any, world: World, count_statements: StatementCounter) -> None:
    """Check that a guess's database work does not depend on how much of the key is right.

    A wrong key id, a right id with a wrong first secret character, and a right id
    with only the last secret character wrong must run the same statements and get
    the same response, so response time cannot reveal a correct prefix. The secret
    itself is compared with hmac.compare_digest over its SHA-256 hash.
    """
    key = world.key_a
    key_id, secret = key[:16], key[17:49]
    last = "A" if secret[-1] != "A" else "B"
    first = "A" if secret[0] != "A" else "B"
    guesses = {
        "unknown id": _with_checksum("ffp_" + "Z" * 12 + "_" + secret),
        "wrong first character": _with_checksum(f"{key_id}_{first}{secret[1:]}"),
        "wrong last character": _with_checksum(f"{key_id}_{secret[:-1]}{last}"),
    }
    traces: dict[str, list[str]] = {}
    bodies: dict[str, Any] = {}
    for label, guess in guesses.items():
        count_statements.statements.clear()
        response = client.get(TENANTS, headers={**bearer(guess), "X-Request-ID": "guess"})
        _assert_error(response, 401, "unauthorized")
        bodies[label] = response.json
        traces[label] = [statement for statement in count_statements.statements if "federation_credentials" in statement]

    assert traces["unknown id"] == traces["wrong first character"] == traces["wrong last character"]
    assert len(traces["unknown id"]) == 1
    assert bodies["unknown id"] == bodies["wrong first character"] == bodies["wrong last character"]


def test_bad_checksum_costs_no_lookup(client: Any, world: World, count_statements: StatementCounter) -> None:
    key = world.key_a
    for position in (len(key) - 1, len(key) - 6, 20, 4):
        replacement = "A" if key[position] != "A" else "B"
        altered = key[:position] + replacement + key[position + 1 :]
        response = client.get(TENANTS, headers=bearer(altered))
        _assert_error(response, 401, "unauthorized")

    assert not any("federation_credentials" in statement for statement in count_statements.statements)
