"""Rate-limit policies: a named limit, the counter it is kept in, and its outage behaviour."""

from __future__ import annotations

import dataclasses
import math

from limits import RateLimitItem, parse

from ..config import BUILT_IN_POLICIES, FederationSettings
from ..entitlements import Audience

ANONYMOUS_POLICY = "anonymous"


@dataclasses.dataclass(frozen=True)
class Policy:
    """A limit with the name that the RateLimit header fields report."""

    name: str
    item: RateLimitItem
    #: Part of the counter key: routes with the same scope share one counter per caller.
    scope: str
    #: ``None`` leaves the choice to ``FEDERATION_RATELIMIT_FAIL_CLOSED``.
    fail_closed: bool | None = None

    @property
    def quota(self) -> int:
        return self.item.amount

    @property
    def window_seconds(self) -> int:
        return self.item.get_expiry()


def named_policy(name: str, limit: str, fail_closed: bool | None = None) -> Policy:
    """Return the policy ``name``, whose counter every route using that name shares."""
    return Policy(name, parse(limit), f"policy:{name}", fail_closed)


def configured_policies(settings: FederationSettings) -> dict[str, Policy]:
    """Return the built-in audience policies and those of ``FEDERATION_RATELIMIT_POLICIES``, by name."""
    policies = {
        name: named_policy(name, settings.values[key.removeprefix("FEDERATION_").lower()])
        for name, key in BUILT_IN_POLICIES.items()
    }
    for name, setting in settings.ratelimit_policies.items():
        policies[name] = named_policy(name, setting.limit, setting.fail_closed)

    return policies


def audience_policy_name(audience: Audience | None) -> str:
    """Return the built-in policy of ``audience``; callers without a principal get the anonymous one."""
    return audience.value if audience is not None else ANONYMOUS_POLICY


def seconds_until(moment: float, now: float) -> int:
    """Return the whole seconds from ``now`` to ``moment``, rounded up and never negative."""
    return max(0, math.ceil(moment - now))
