"""``with_rate_limit``: the public rate-limit guard, for federation and host routes alike."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, request
from limits import parse

from ..auth.decorators import AuthRequirement, auth_requirement
from ..auth.principal import get_current_principal
from ..config import POLICY_NAME_PATTERN, ConfigurationError, parse_policy_name, parse_rate_limit
from ..entitlements import Audience
from ..errors import ServiceUnavailable, TooManyRequests
from ..guard import run_guard
from .component import RateLimits, StorageUnavailable, get_rate_limits
from .headers import limit_member, policy_member, record_fields
from .keys import request_key
from .policies import Policy, audience_policy_name

P = ParamSpec("P")
R = TypeVar("R")

_SPECS_ATTRIBUTE = "__federation_rate_limits__"

#: Retry-After of the 503 that a fail-closed policy returns while the storage is unreachable.
STORAGE_RETRY_AFTER_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class RateLimitSpec:
    """One ``with_rate_limit`` on a view: where its policy comes from and what one call costs."""

    view_name: str
    cost: int
    #: The policy of a literal limit, built when the view is decorated.
    route_policy: Policy | None
    #: A policy of the configuration; ``None`` with no ``route_policy`` means the caller's audience policy.
    policy_name: str | None
    fail_closed: bool | None
    #: The audience of an auth decorator inside this one, known when the view is decorated.
    audience: Audience | None

    def resolve(self, rate_limits: RateLimits, audience: Audience | None) -> Policy:
        """Return the policy that applies to a caller of ``audience``; raise when the configuration does not fit."""
        if self.route_policy is not None:
            policy = self.route_policy
        else:
            policy = rate_limits.policy(self.policy_name or audience_policy_name(audience))
            if self.cost > policy.quota:
                raise ConfigurationError(
                    f"with_rate_limit on {self.view_name} costs {self.cost} per call, more than the "
                    f"{policy.quota} per window that policy {policy.name!r} allows, so every call would be rejected. "
                    "Lower the cost or raise the policy's limit."
                )

        if self.fail_closed is not None:
            policy = dataclasses.replace(policy, fail_closed=self.fail_closed)

        return policy


def rate_limit_specs(view: Callable[..., Any]) -> tuple[RateLimitSpec, ...]:
    """Return the rate limits of ``view``, outermost last; ``functools.wraps`` carries them outwards."""
    return tuple(getattr(view, _SPECS_ATTRIBUTE, ()))


def _route_policy(limit: str, view_name: str, name: str, fail_closed: bool | None) -> Policy:
    parse_rate_limit(f"with_rate_limit on {view_name}", limit)
    return Policy(name, parse(limit), f"route:{view_name}", fail_closed)


def _build_spec(
    view: Callable[..., Any],
    limit: str | None,
    policy: str | None,
    cost: int,
    name: str | None,
    fail_closed: bool | None,
) -> RateLimitSpec:
    view_name = f"{view.__module__}.{view.__qualname__}"
    where = f"with_rate_limit on {view_name}"
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ConfigurationError(f"{where}: cost must be a positive integer, got {cost!r}.")

    if limit is not None and policy is not None:
        raise ConfigurationError(f"{where}: pass a limit or a policy name, not both.")

    if policy is not None:
        parse_policy_name(where, policy)

    if name is not None and limit is None:
        raise ConfigurationError(f"{where}: name only applies to a literal limit; a policy keeps its own name.")

    requirement: AuthRequirement | None = auth_requirement(view)
    route_policy = None
    if limit is not None:
        policy_name = name if name is not None else view.__name__
        if not POLICY_NAME_PATTERN.fullmatch(policy_name):
            raise ConfigurationError(
                f"{where}: {policy_name!r} cannot name a policy in the RateLimit header fields. "
                "Pass name= with 1 to 64 letters, digits or '_.:-'."
            )

        route_policy = _route_policy(limit, view_name, policy_name, fail_closed)
        if cost > route_policy.quota:
            raise ConfigurationError(
                f"{where} costs {cost} per call, more than the limit {limit!r} allows in one window, "
                "so every call would be rejected. Lower the cost or raise the limit."
            )

    return RateLimitSpec(
        view_name, cost, route_policy, policy, fail_closed, requirement.audience if requirement else None
    )


def _enforce(spec: RateLimitSpec, requirement: AuthRequirement | None) -> None:
    rate_limits = get_rate_limits()
    if not rate_limits.enabled:
        return

    # Authenticate first, so that rejected credentials neither count nor depend on the order of the decorators.
    if requirement is not None:
        requirement.enforce()

    principal = get_current_principal()
    policy = spec.resolve(rate_limits, principal.audience if principal is not None else None)
    try:
        state = rate_limits.hit(policy, request_key(), spec.cost)
    except StorageUnavailable:
        record_fields(policy_member(policy), None)
        if rate_limits.fails_closed(policy):
            raise ServiceUnavailable(
                "The rate-limit storage is unavailable, and this route does not serve requests it cannot count. "
                "Retry after the time in Retry-After.",
                details={"policy": policy.name},
                headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
            ) from None

        return

    record_fields(policy_member(policy), limit_member(policy, state.remaining, state.reset_seconds))
    if not state.allowed:
        retry_after = max(1, state.reset_seconds)
        raise TooManyRequests(
            f"Rate limit exceeded: policy {policy.name!r} allows {policy.quota} per {policy.window_seconds} seconds. "
            f"Retry after {retry_after} seconds.",
            details={
                "policy": policy.name,
                "limit": policy.quota,
                "window": policy.window_seconds,
                "retry_after": retry_after,
            },
            headers={"Retry-After": str(retry_after)},
        )


def with_rate_limit(
    limit: str | None = None,
    *,
    policy: str | None = None,
    cost: int = 1,
    name: str | None = None,
    fail_closed: bool | None = None,
) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Limit how often each caller may call the decorated view.

    The caller is the authenticated principal (its audience and id), or, on routes
    without authentication, the client address. An auth decorator inside this one
    runs first, so a request with a rejected credential gets its 401 or 403
    without being counted, whichever order the decorators come in.

    The limit is ``limit`` (such as ``"10/minute"``, counted per route and named
    ``name`` or after the view), the named ``policy`` of
    ``FEDERATION_RATELIMIT_POLICIES`` (counted across every route that uses it), or
    by default the policy of the caller's audience: ``provider``, ``developer`` or
    ``anonymous``. Each call consumes ``cost``. ``fail_closed`` overrides what
    happens while the storage is unreachable: serve without counting (false) or
    answer 503 (true).

    Responses carry the ``RateLimit-Policy`` and ``RateLimit`` header fields; a
    caller over the limit gets 429 ``rate_limited`` with ``Retry-After``. OPTIONS
    requests are not counted.

    Raises :class:`~flask_federation.ConfigurationError` when the view is decorated
    if a literal limit is invalid or smaller than ``cost``. For a configured
    policy the same check runs in ``init_app`` for routes registered by then, and on
    the first request otherwise.
    """

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        spec = _build_spec(view, limit, policy, cost, name, fail_closed)
        requirement = auth_requirement(view)

        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            if request.method != "OPTIONS":
                denial = run_guard(lambda: _enforce(spec, requirement))
                if denial is not None:
                    return denial

            return current_app.ensure_sync(view)(*args, **kwargs)

        setattr(wrapper, _SPECS_ATTRIBUTE, (*rate_limit_specs(view), spec))
        return wrapper

    return decorator


def validate_routes(app: Flask, rate_limits: RateLimits) -> None:
    """Check the configured policies of every rate-limited route registered so far; raise naming the route."""
    for endpoint, view in app.view_functions.items():
        for spec in rate_limit_specs(view):
            audiences: Iterable[Audience | None] = (spec.audience,)
            if spec.route_policy is None and spec.policy_name is None and spec.audience is None:
                # The audience comes from an auth decorator outside this one, known only per request.
                audiences = ()

            for audience in audiences:
                try:
                    spec.resolve(rate_limits, audience)
                except ConfigurationError as error:
                    raise ConfigurationError(f"Route {endpoint!r}: {error}") from None
