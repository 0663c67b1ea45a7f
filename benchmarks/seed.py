"""Seed data of the guard benchmarks: fresh federation tables, one provider, its API key and one tenant."""

from __future__ import annotations

import dataclasses

from flask import Flask

from flask_federation import Federation, admin
from flask_federation.models import metadata
from flask_federation.state import get_state


@dataclasses.dataclass(frozen=True)
class Seed:
    provider_pk: int
    api_key: str
    tenant_id: str


def seed_database(database_url: str) -> Seed:
    """Drop and recreate the federation tables of ``database_url``, then add a provider, a key and a tenant."""
    app = Flask("benchmark_seed")
    app.config.update(SQLALCHEMY_DATABASE_URI=database_url, FEDERATION_ENABLED=True)
    Federation(app)
    with app.app_context():
        engine = get_state().db.engine
        metadata.drop_all(engine)
        metadata.create_all(engine)
        provider = admin.create_provider("Benchmark provider")
        key = admin.issue_key(provider.public_id, ["tenants:read", "tenants:write"]).key
        tenant = admin.create_tenant(provider.public_id, name="Benchmark tenant", slug="benchmark", region="eu-west-1")
        seed = Seed(provider.id, key, tenant.public_id)
        get_state().db.session.remove()
        engine.dispose()

    return seed
