"""Seed data for the example app and for trying the API by hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterable, Sequence

from sqlalchemy import func, insert, select

from . import admin
from .entitlements import CATALOGUE, DIAGNOSTICS_READ, TENANTS_READ, Audience
from .models import Developer, Provider, Tenant, new_public_id, utcnow
from .state import get_state

_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")

#: Labels of the demo keys; :func:`smoke_environment` picks keys by them.
FULL_LABEL = "demo: all entitlements"
READ_ONLY_LABEL = "demo: read only"
DIAGNOSTICS_ONLY_LABEL = "demo: diagnostics only"


@dataclasses.dataclass(frozen=True)
class DemoKey:
    owner_id: str
    owner_name: str
    audience: str
    entitlements: tuple[str, ...]
    key: str
    label: str


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
        keys.append(_issue(provider, "provider", CATALOGUE[Audience.PROVIDER], FULL_LABEL))
        keys.append(_issue(provider, "provider", [TENANTS_READ], READ_ONLY_LABEL))

    for index in range(developers):
        developer = admin.create_developer(f"Demo Integrator {index + 1}")
        keys.append(_issue(developer, "developer", CATALOGUE[Audience.DEVELOPER], FULL_LABEL))
        if index == 0:
            keys.append(_issue(developer, "developer", [DIAGNOSTICS_READ], DIAGNOSTICS_ONLY_LABEL))

    return keys


def _issue(owner: Provider | Developer, audience: str, entitlements: Iterable[str], label: str) -> DemoKey:
    issued = admin.issue_key(owner.public_id, entitlements, label=label)
    return DemoKey(owner.public_id, owner.name, audience, tuple(issued.credential.entitlements), issued.key, label)


def smoke_environment(keys: Sequence[DemoKey], *, base_url: str, prefix: str) -> dict[str, str]:
    """Return the ``FEDERATION_SMOKE_*`` variables that run ``flask federation smoke`` against the demo data.

    The first provider's keys serve the provider checks and the second provider's
    full key the 404 check; the first developer's keys serve the developer checks.
    A variable whose key was not seeded (one provider, no developers) is left out.
    """
    environment = {"FEDERATION_SMOKE_BASE_URL": base_url, "FEDERATION_SMOKE_PREFIX": prefix}
    provider_ids = list(dict.fromkeys(key.owner_id for key in keys if key.audience == "provider"))
    developer_ids = list(dict.fromkeys(key.owner_id for key in keys if key.audience == "developer"))
    sources = {
        "FEDERATION_SMOKE_PROVIDER_KEY": (provider_ids[:1], FULL_LABEL),
        "FEDERATION_SMOKE_PROVIDER_READONLY_KEY": (provider_ids[:1], READ_ONLY_LABEL),
        "FEDERATION_SMOKE_OTHER_PROVIDER_KEY": (provider_ids[1:2], FULL_LABEL),
        "FEDERATION_SMOKE_DEVELOPER_KEY": (developer_ids[:1], FULL_LABEL),
        "FEDERATION_SMOKE_DEVELOPER_LIMITED_KEY": (developer_ids[:1], DIAGNOSTICS_ONLY_LABEL),
    }
    for variable, (owner_ids, label) in sources.items():
        for key in keys:
            if key.owner_id in owner_ids and key.label == label:
                environment[variable] = key.key
                break

    return environment

