"""The two audiences and the entitlement catalogue of each."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Audience(enum.StrEnum):
    """The owner type of a credential: a provider operating tenants, or a third-party developer."""

    PROVIDER = "provider"
    DEVELOPER = "developer"


TENANTS_READ = "tenants:read"
TENANTS_WRITE = "tenants:write"
AUDIT_READ = "audit:read"
DIAGNOSTICS_READ = "diagnostics:read"

CATALOGUE: dict[Audience, frozenset[str]] = {
    Audience.PROVIDER: frozenset({TENANTS_READ, TENANTS_WRITE, AUDIT_READ}),
    Audience.DEVELOPER: frozenset({DIAGNOSTICS_READ, AUDIT_READ}),
}


class UnknownEntitlement(ValueError):
    """An entitlement is not in the catalogue of the credential's audience."""


def validate_entitlements(audience: Audience, entitlements: Iterable[str]) -> frozenset[str]:
    """Return ``entitlements`` as a set, or raise naming the first one not in the audience's catalogue."""
    requested = frozenset(entitlements)
    unknown = sorted(requested - CATALOGUE[audience])
    if unknown:
        allowed = ", ".join(sorted(CATALOGUE[audience]))
        raise UnknownEntitlement(f"Unknown {audience.value} entitlement {unknown[0]!r}. Use one or more of: {allowed}.")

    return requested
