"""The authorisation matrix: every federation route, called by every kind of caller on own and foreign resources.

The routes come from the app's URL map, so a new route without a row in
``EXPECTED`` fails :func:`test_every_route_has_expectations` instead of going
untested.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from flask import Flask, url_for
from werkzeug.routing import Rule

from flask_federation import admin
from flask_federation.auth.decorators import VIEW_AUDIENCE_ATTRIBUTE
from flask_federation.entitlements import Audience
from flask_federation.models import Tenant
from flask_federation.state import get_state

from .conftest import World, bearer

PRINCIPALS = ("anonymous", "provider_a", "provider_b", "read_only_a", "developer", "revoked", "expired")
#: Each route's status per caller: one status, or (own resource, foreign resource) on routes with a tenant id.
Expectation = dict[str, int | tuple[int, int]]

_PROVIDER_READ: Expectation = {
    "anonymous": 401,
    "provider_a": 200,
    "provider_b": 200,
    "read_only_a": 200,
    "developer": 401,
    "revoked": 401,
    "expired": 401,
}
_PUBLIC: Expectation = dict.fromkeys(PRINCIPALS, 200)

EXPECTED: dict[tuple[str, str], Expectation] = {
    ("federation_provider.list_tenants", "GET"): _PROVIDER_READ,
    ("federation_provider.create_tenant", "POST"): {**_PROVIDER_READ, "provider_a": 201, "provider_b": 201, "read_only_a": 403},
    ("federation_provider.get_tenant", "GET"): {
        **_PROVIDER_READ,
        "provider_a": (200, 404),
        "provider_b": (200, 404),
        "read_only_a": (200, 404),
    },
    ("federation_provider.update_tenant", "PATCH"): {
        **_PROVIDER_READ,
        "provider_a": (200, 404),
        "provider_b": (200, 404),
        # The entitlement check comes before any query, so the read-only key cannot probe ids either.
        "read_only_a": (403, 403),
    },
    # The read-only key holds tenants:read only, not audit:read.
    ("federation_provider.list_audit", "GET"): {**_PROVIDER_READ, "read_only_a": 403},
    ("federation_developer.diagnostics", "GET"): {
        **dict.fromkeys(PRINCIPALS, 401),
        "developer": 200,
    },
    ("federation_developer.list_audit", "GET"): {
        **dict.fromkeys(PRINCIPALS, 401),
        "developer": 200,
    },
    ("federation_meta.openapi_document", "GET"): _PUBLIC,
    ("federation_meta.api_reference", "GET"): _PUBLIC,
    ("federation_meta.api_reference_script", "GET"): _PUBLIC,
    ("federation_meta.api_reference_asset", "GET"): _PUBLIC,
}

#: Values of path arguments that do not name a resource of the caller.
FIXED_ARGUMENTS = {"name": "swagger-ui.css"}


def federation_routes(app: Flask) -> list[tuple[Rule, str]]:
    """Return every (rule, method) of the app's federation blueprints, HEAD and OPTIONS aside."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("federation_"):
            continue

        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((rule, method))

    return routes


class Callers:
    """A key per kind of caller; the revoked and expired ones exist for both audiences."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.keys: dict[str, str | None] = {
            "anonymous": None,
            "provider_a": world.key_a,
            "provider_b": world.key_b,
            "read_only_a": world.key_a_read_only,
            "developer": world.key_dev,
        }
        self.revoked = {
            Audience.PROVIDER: self._revoked(world.provider_a.public_id, ["tenants:read", "tenants:write", "audit:read"]),
            Audience.DEVELOPER: self._revoked(world.developer.public_id, ["diagnostics:read", "audit:read"]),
        }
        self.expired = {
            Audience.PROVIDER: self._expired(world.provider_a.public_id, ["tenants:read", "tenants:write", "audit:read"]),
            Audience.DEVELOPER: self._expired(world.developer.public_id, ["diagnostics:read", "audit:read"]),
        }

    @staticmethod
    def _revoked(owner: str, entitlements: list[str]) -> str:
        issued = admin.issue_key(owner, entitlements)
        admin.revoke_key(issued.credential.key_id)
        return issued.key

    @staticmethod
    def _expired(owner: str, entitlements: list[str]) -> str:
        issued = admin.issue_key(owner, entitlements, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        issued.credential.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        get_state().session.commit()
        return issued.key

    def key(self, principal: str, audience: Audience | None) -> str | None:
        # Revoked and expired keys belong to the route's audience, so that only the revocation or expiry denies them.
        if principal == "revoked":
            return self.revoked[audience or Audience.PROVIDER]

        if principal == "expired":
            return self.expired[audience or Audience.PROVIDER]

        return self.keys[principal]

    def tenant(self, principal: str, resource: str) -> Tenant:
        """Return a tenant of the caller's provider ("own") or of another provider ("foreign")."""
        caller_is_b = principal == "provider_b"
        own = self.world.tenant_b if caller_is_b else self.world.tenant_a
        foreign = self.world.tenant_a if caller_is_b else self.world.tenant_b
        return own if resource == "own" else foreign


def _request(app: Flask, client: Any, callers: Callers, rule: Rule, method: str, principal: str, resource: str) -> Any:
    view = app.view_functions[rule.endpoint]
    key = callers.key(principal, getattr(view, VIEW_AUDIENCE_ATTRIBUTE, None))
    arguments: dict[str, str] = {}
    for name in rule.arguments:
        if name == "tenant_id":
            arguments[name] = callers.tenant(principal, resource).public_id
        else:
            arguments[name] = FIXED_ARGUMENTS[name]

    with app.test_request_context():
        path = url_for(rule.endpoint, **arguments)

    headers = bearer(key) if key is not None else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"POST", "PATCH"}:
        headers["Idempotency-Key"] = uuid.uuid4().hex
        suffix = uuid.uuid4().hex[:8]
        kwargs["json"] = (
            {"name": "Matrix", "slug": f"matrix-{suffix}", "region": "eu-west-1"}
            if method == "POST"
            else {"name": f"Matrix {suffix}"}
        )

    return client.open(path, method=method, **kwargs)


def test_every_route_has_expectations(app: Flask) -> None:
    routes = {(rule.endpoint, method) for rule, method in federation_routes(app)}
    missing = sorted(routes - set(EXPECTED))
    assert not missing, f"Routes without a row in EXPECTED: {missing}. Add their statuses per caller."
    stale = sorted(set(EXPECTED) - routes)
    assert not stale, f"Rows in EXPECTED for routes the app no longer has: {stale}."
    for rule, _ in federation_routes(app):
        unknown = sorted(set(rule.arguments) - {"tenant_id"} - set(FIXED_ARGUMENTS))
        assert not unknown, f"Route {rule.rule} has path arguments the matrix cannot fill: {unknown}."


def test_openapi_paths_all_in_matrix(app: Flask) -> None:
    from flask_federation.openapi import build_openapi

    document = build_openapi(app)
    prefix = get_state().settings.url_prefix
    routed = {(rule.rule, method.lower()) for rule, method in federation_routes(app)}
    for path, operations in document["paths"].items():
        flask_path = prefix + path.replace("{", "<").replace("}", ">")
        for method in operations:
            if method in {"get", "post", "patch", "put", "delete"}:
                assert (flask_path, method) in routed, f"{method.upper()} {path} is documented but not routed"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_authorisation_matrix(app: Flask, client: Any, world: World, principal: str) -> None:
    callers = Callers(world)
    names_before = {tenant.public_id: tenant.name for tenant in (world.tenant_a, world.tenant_b)}
    for rule, method in federation_routes(app):
        expectation = EXPECTED[(rule.endpoint, method)][principal]
        resources = ("own", "foreign") if "tenant_id" in rule.arguments else ("none",)
        for index, resource in enumerate(resources):
            expected = expectation[index] if isinstance(expectation, tuple) else expectation
            response = _request(app, client, callers, rule, method, principal, resource)
            # Static files are streamed from an open file, which the test client leaves to the caller to close.
            response.close()
            label = f"{method} {rule.rule} as {principal} on {resource} resource"
            assert response.status_code == expected, f"{label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
            if rule.endpoint.startswith("federation_meta"):
                continue

            assert response.mimetype == "application/json", label
            assert response.json["ok"] is (expected < 400), label
            if expected == 401:
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), label

            if resource == "foreign" and expected == 404:
                assert response.json["error"]["code"] == "not_found", label
                assert "data" not in response.json, label

    # Whatever the caller did, the other provider's tenant kept its name.
    get_state().session.expire_all()
    for tenant_id, name in names_before.items():
        tenant = get_state().session.query(Tenant).filter_by(public_id=tenant_id).one()
        owner_of_caller = {"provider_a": world.tenant_a.public_id, "provider_b": world.tenant_b.public_id}
        if owner_of_caller.get(principal) != tenant_id:
            assert tenant.name == name, f"{principal} changed {tenant_id}"
