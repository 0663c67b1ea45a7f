"""API keys and the auth decorators: format, audiences, lifecycle and status rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_federation import admin, current_principal, with_developer_auth, with_provider_auth
from flask_federation.auth.api_keys import MalformedKey, generate_key, hash_key, parse_key
from flask_federation.entitlements import Audience
from flask_federation.models import Credential
from flask_federation.state import get_state

from .conftest import StatementCounter, World, bearer

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"


def test_generated_key_parses_back() -> None:
    key, key_id = generate_key(Audience.PROVIDER)
    parsed = parse_key(key)
    assert key.startswith("ffp_")
    assert parsed.key_id == key_id
    assert parsed.audience is Audience.PROVIDER


@pytest.mark.parametrize(
    "mutate",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k[:20] + k[21:],
        lambda k: k + "x",
        lambda k: "ffx" + k[3:],
        lambda k: "",
    ],
)
def test_malformed_key_rejected(mutate: Any) -> None:
    key, _ = generate_key(Audience.DEVELOPER)
    with pytest.raises(MalformedKey):
        parse_key(mutate(key))


def test_only_hash_is_stored(app: Flask, world: World) -> None:
    issued = admin.issue_key(world.provider_a.public_id, ["tenants:read"])
    row = get_state().session.get(Credential, issued.credential.id)
    assert row is not None
    assert row.key_hash == hash_key(issued.key)
    assert issued.key not in repr(issued)
    for value in vars(row).values():
        assert value != issued.key


def test_unknown_entitlement_rejected_at_issue(app: Flask, world: World) -> None:
    with pytest.raises(Exception, match="diagnostics:read"):
        admin.issue_key(world.provider_a.public_id, ["diagnostics:read"])


def test_missing_credential_challenges(client: Any) -> None:
    response = client.get(TENANTS)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="federation"'


def test_query_string_key_not_accepted(client: Any, world: World) -> None:
    response = client.get(f"{TENANTS}?api_key={world.key_a}")
    assert response.status_code == 401
    assert "query string" in response.json["error"]["message"]


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Token xyz", "bearer   "])
def test_malformed_authorization_header(client: Any, header: str) -> None:
    response = client.get(TENANTS, headers={"Authorization": header})
    assert response.status_code == 401
    assert "invalid_request" in response.headers["WWW-Authenticate"]


def test_bad_checksum_rejected_without_query(client: Any, world: World, count_statements: StatementCounter) -> None:
    tampered = world.key_a[:-1] + ("A" if world.key_a[-1] != "A" else "B")
    response = client.get(TENANTS, headers=bearer(tampered))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # Only the audit event of the denial is written; the key itself is never looked up.
    assert not any("federation_credentials" in statement for statement in count_statements.statements)


def test_wrong_secret_rejected(client: Any, world: World) -> None:
    forged_body = world.key_a[:17] + "A" * 32
    from flask_federation.auth.api_keys import _checksum

    response = client.get(TENANTS, headers=bearer(forged_body + _checksum(forged_body)))
    assert response.status_code == 401
    assert response.json["error"]["message"].startswith("The API key is not valid.")


def test_provider_key_on_developer_route(client: Any, world: World) -> None:
    response = client.get(DIAGNOSTICS, headers=bearer(world.key_a))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_developer_key_on_provider_route(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_dev))
    assert response.status_code == 401


def test_revoked_key_rejected(client: Any, world: World) -> None:
    issued = admin.issue_key(world.provider_a.public_id, ["tenants:read"])
    assert client.get(TENANTS, headers=bearer(issued.key)).status_code == 200
    admin.revoke_key(issued.credential.key_id)
    response = client.get(TENANTS, headers=bearer(issued.key))
    assert response.status_code == 401
    assert "revoked" in response.json["error"]["message"]


def test_expired_key_rejected(client: Any, world: World) -> None:
    issued = admin.issue_key(
        world.provider_a.public_id, ["tenants:read"], expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    )
    issued.credential.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    get_state().session.commit()
    response = client.get(TENANTS, headers=bearer(issued.key))
    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]


def test_missing_entitlement_names_it(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_a_no_tenants))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert "tenants:read" in response.json["error"]["message"]
    assert response.json["error"]["details"] == {"missing_entitlements": ["tenants:read"]}


def test_denied_request_touches_no_tenant_data(client: Any, world: World, count_statements: StatementCounter) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_a_no_tenants))
    assert response.status_code == 403
    assert count_statements.statements
    assert not any("federation_tenants" in statement for statement in count_statements.statements)


def test_unknown_entitlement_rejected_at_decoration() -> None:
    with pytest.raises(ValueError, match="tenants:delete"):
        with_provider_auth("tenants:delete")


def test_decorators_on_host_route_set_principal(app: Flask, world: World) -> None:
    @app.get("/host/whoami")
    @with_developer_auth("diagnostics:read")
    async def whoami() -> Any:
        return jsonify(subject=current_principal.subject_id, method=current_principal.auth_method)

    response = app.test_client().get("/host/whoami", headers=bearer(world.key_dev))
    assert response.status_code == 200
    assert response.json == {"subject": world.developer.public_id, "method": "api_key"}


def test_last_used_recorded(client: Any, world: World) -> None:
    client.get(DIAGNOSTICS, headers=bearer(world.key_dev))
    response = client.get(DIAGNOSTICS, headers=bearer(world.key_dev))
    assert response.json["data"]["credential"]["last_used_at"] is not None
