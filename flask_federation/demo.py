"""Seed data for the example app and for trying the API by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

from sqlalchemy import func, insert, select

from . import admin
from .entitlements import CATALOGUE, DIAGNOSTICS_READ, TENANTS_READ, Audience
from .models import Provider, Tenant, new_public_id, utcnow
from .state import get_state

_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")


@dataclasses.dataclass(frozen=True)
class DemoKey:
    owner_id: str
    owner_name: str
    audience: str
    entitlements: tuple[str, ...]
    key: str


class AlreadySeeded(RuntimeError):
    """The database already has providers; seeding again would duplicate the demo."""


def seed_demo(*, providers: int = 3, tenants: int = 1000, developers: int = 2, seed: int = 7) -> list[DemoKey]:
    """Create providers with ``tenants`` tenants spread among them, developers, and keys; return the keys.

    Raises :class:`AlreadySeeded` when providers exist already.
    """
    session = get_state().session
    if session.execute(select(func.count()).select_from(Provider)).scalar_one():
        raise AlreadySeeded("The database already contains providers. Seed an empty database.")

    rng = random.Random(seed)  # noqa: S311 (demo data, not security)
    keys: list[DemoKey] = []
    now = utcnow()
    names = ["Acme Hosting", "Globex Cloud", "Initech Platforms", "Umbrella Apps", "Hooli Sites"]
    for index in range(providers):
        provider = admin.create_provider(names[index % len(names)] + ("" if index < len(names) else f" {index}"))
        count = tenants // providers + (1 if index < tenants % providers else 0)
        rows = [
            {
                "public_id": new_public_id("ten_"),
                "provider_id": provider.id,
                "name": f"{provider.name} tenant {number:04d}",
                "slug": f"tenant-{number:04d}",
                "status": "suspended" if rng.random() < 0.1 else "active",
                "region": rng.choice(_REGIONS),
                "metadata_": {"plan": rng.choice(["free", "team", "enterprise"])},
                "created_at": now - dt.timedelta(minutes=count - number),
                "updated_at": now - dt.timedelta(minutes=count - number),
            }
            for number in range(count)
        ]
        session.execute(insert(Tenant), rows)
        session.commit()
        full = admin.issue_key(provider.public_id, CATALOGUE[Audience.PROVIDER], label="demo: all entitlements")
        read_only = admin.issue_key(provider.public_id, [TENANTS_READ], label="demo: read only")
        for issued in (full, read_only):
            keys.append(
                DemoKey(
                    provider.public_id, provider.name, "provider", tuple(issued.credential.entitlements), issued.key
                )
            )

    for index in range(developers):
        developer = admin.create_developer(f"Demo Integrator {index + 1}")
        issued = admin.issue_key(developer.public_id, CATALOGUE[Audience.DEVELOPER], label="demo")
        keys.append(
            DemoKey(developer.public_id, developer.name, "developer", tuple(issued.credential.entitlements), issued.key)
        )
        if index == 0:
            limited = admin.issue_key(developer.public_id, [DIAGNOSTICS_READ], label="demo: diagnostics only")
            keys.append(
                DemoKey(
                    developer.public_id,
                    developer.name,
                    "developer",
                    tuple(limited.credential.entitlements),
                    limited.key,
                )
            )

    return keys

