"""The guard benchmark's apps: one route doing the same database read, behind a different guard stack per variant.

Every variant serves ``GET /tenants/<tenant_id>``, which reads one tenant by
public id and provider (one indexed SELECT) and returns three fields as JSON.
Variants differ only in what runs around that read:

- ``bare``: Flask and Flask-SQLAlchemy, no federation extension.
- ``extension``: ``Federation(app)`` installed (its request hooks run), no guard.
- ``auth``: ``with_provider_auth`` (API key looked up and hash-compared in the database).
- ``ratelimit``: ``with_rate_limit`` alone, so counted per client address.
- ``audit``: ``with_audit`` alone, so one hash-chained event per request on the anonymous chain.
- ``auth_ratelimit``: ``with_rate_limit`` over ``with_provider_auth``.
- ``full``: ``with_audit``, ``with_rate_limit`` and ``with_provider_auth``, stacked like the real read routes.
- ``full_batched``: ``full`` with ``FEDERATION_AUDIT_BATCH_READS``, so the audit events are written in batches.
- ``full_cached``: ``full`` with ``FEDERATION_CREDENTIAL_CACHE_SECONDS=5``, so a key verified in the last
  5 seconds (and used in the last minute) skips the credential query.
- ``full_opt_in``: ``full`` with both of those options.
- ``handmade``: Flask-HTTPAuth's ``HTTPTokenAuth`` checking the same API key hash in the
  database, and Flask-Limiter's own ``@limiter.limit`` on the same Redis, with its
  rate-limit headers on: the same checks as ``auth_ratelimit``, assembled by hand.

gunicorn serves ``benchmarks.apps:create_app()``, which reads the variant and the
servers from ``BENCH_VARIANT``, ``BENCH_DATABASE_URL``, ``BENCH_REDIS_URL`` and
``BENCH_PROVIDER_PK``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify
from flask_httpauth import HTTPTokenAuth  # type: ignore[import-untyped]
from flask_limiter import Limiter
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import select

from flask_federation import Federation, current_principal, with_audit, with_provider_auth, with_rate_limit
from flask_federation.auth.api_keys import MalformedKey, hash_key, parse_key
from flask_federation.models import Credential, Tenant

VARIANTS = (
    "bare",
    "extension",
    "auth",
    "ratelimit",
    "audit",
    "auth_ratelimit",
    "full",
    "full_batched",
    "full_cached",
    "full_opt_in",
    "handmade",
)

#: Seconds of the API key cache in ``full_cached`` and ``full_opt_in``.
CREDENTIAL_CACHE_SECONDS = 5

#: The opt-in settings of each full-stack variant.
FULL_STACK_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {},
    "full_batched": {"FEDERATION_AUDIT_BATCH_READS": True},
    "full_cached": {"FEDERATION_CREDENTIAL_CACHE_SECONDS": CREDENTIAL_CACHE_SECONDS},
    "full_opt_in": {
        "FEDERATION_AUDIT_BATCH_READS": True,
        "FEDERATION_CREDENTIAL_CACHE_SECONDS": CREDENTIAL_CACHE_SECONDS,
    },
}

#: High enough that no benchmark run reaches it, so every variant does the same work per request.
UNREACHED_LIMIT = "100000000/hour"



def read_tenant(session: Any, provider_pk: int, tenant_id: str) -> Response:
    """Run the one SELECT that every variant shares and return the tenant as JSON."""
    tenant = session.execute(
        select(Tenant).where(Tenant.public_id == tenant_id, Tenant.provider_id == provider_pk)
    ).scalar_one()
    return jsonify(id=tenant.public_id, name=tenant.name, status=tenant.status)


def _base_app(database_url: str) -> tuple[Flask, SQLAlchemy]:
    app = Flask("guard_benchmark")
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, SECRET_KEY="benchmark-only")  # noqa: S106
    db = SQLAlchemy()
    db.init_app(app)
    return app, db


def _federation_app(database_url: str, redis_url: str, **settings: Any) -> tuple[Flask, SQLAlchemy]:
    app, db = _base_app(database_url)
    app.config.update(
        FEDERATION_ENABLED=True,
        FEDERATION_RATELIMIT_STORAGE_URI=redis_url,
        FEDERATION_PROVIDER_RATE_LIMIT=UNREACHED_LIMIT,
        FEDERATION_ANONYMOUS_RATE_LIMIT=UNREACHED_LIMIT,
        **settings,
    )
    Federation(app, db)
    return app, db


def _handmade_app(database_url: str, redis_url: str) -> Flask:
    app, db = _base_app(database_url)
    app.config.update(RATELIMIT_HEADERS_ENABLED=True)
    auth = HTTPTokenAuth(scheme="Bearer")

    @auth.verify_token  # type: ignore[untyped-decorator]
    def verify_token(token: str) -> int | None:
        try:
            parsed = parse_key(token)
        except MalformedKey:
            return None

        credential = db.session.execute(select(Credential).where(Credential.key_id == parsed.key_id)).scalar_one_or_none()
        if credential is None or not hmac.compare_digest(hash_key(token), credential.key_hash):
            return None

        if credential.revoked_at is not None or credential.provider_id is None or "tenants:read" not in credential.entitlements:
            return None

        return credential.provider_id

    def provider_key() -> str:
        return f"provider:{auth.current_user()}"

    limiter = Limiter(key_func=provider_key, storage_uri=redis_url, strategy="sliding-window-counter")
    limiter.init_app(app)

    @app.get("/tenants/<tenant_id>")
    @auth.login_required  # type: ignore[untyped-decorator]
    @limiter.limit(UNREACHED_LIMIT)
    def get_tenant(tenant_id: str) -> Response:
        return read_tenant(db.session, auth.current_user(), tenant_id)

    return app


def create_app(
    variant: str | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    provider_pk: int | None = None,
) -> Flask:
    """Build the app of ``variant``; arguments left out come from the ``BENCH_*`` environment variables."""
    variant = variant or os.environ["BENCH_VARIANT"]
    database_url = database_url or os.environ["BENCH_DATABASE_URL"]
    redis_url = redis_url or os.environ["BENCH_REDIS_URL"]
    fixed_provider_pk = provider_pk if provider_pk is not None else int(os.environ["BENCH_PROVIDER_PK"])
    if variant not in VARIANTS:
        raise ValueError(f"Unknown benchmark variant {variant!r}; choose one of {', '.join(VARIANTS)}.")

    if variant == "handmade":
        return _handmade_app(database_url, redis_url)

    if variant == "bare":
        app, db = _base_app(database_url)
    else:
        app, db = _federation_app(database_url, redis_url, **FULL_STACK_SETTINGS.get(variant, {}))

    full_stack = variant in FULL_STACK_SETTINGS
    authenticated = variant in ("auth", "auth_ratelimit") or full_stack
    guards: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = []
    if variant == "audit" or full_stack:
        guards.append(with_audit("bench.tenant.read", target_type="tenant", target_id_arg="tenant_id"))
    if variant in ("ratelimit", "auth_ratelimit") or full_stack:
        guards.append(with_rate_limit())
    if authenticated:
        guards.append(with_provider_auth("tenants:read"))

    def get_tenant(tenant_id: str) -> Response:
        provider = current_principal.subject_pk if authenticated else fixed_provider_pk
        return read_tenant(db.session, provider, tenant_id)

    view: Callable[..., Any] = get_tenant
    for guard in reversed(guards):
        view = guard(view)

    app.add_url_rule("/tenants/<tenant_id>", "get_tenant", view)
    return app
