"""``with_provider_auth`` and ``with_developer_auth``: the public auth guards."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import current_app

from ..entitlements import CATALOGUE, Audience
from ..errors import Forbidden
from ..guard import run_guard
from .authenticate import authenticate
from .principal import Principal, set_current_principal

P = ParamSpec("P")
R = TypeVar("R")

_REQUIREMENT_ATTRIBUTE = "__federation_auth__"
#: Attribute naming the audience of an auth-guarded view. ``functools.wraps`` copies it onto outer
#: wrappers, so a guard stacked outside the auth decorator can authenticate the caller first.
VIEW_AUDIENCE_ATTRIBUTE = "__federation_audience__"


def check_entitlements(principal: Principal, required: frozenset[str]) -> None:
    """Raise 403 naming the first entitlement that ``principal`` lacks."""
    missing = sorted(required - principal.entitlements)
    if missing:
        raise Forbidden(
            f"The credential lacks the entitlement {missing[0]!r} that this route requires. "
            "Ask the platform to grant it, or use a credential that has it.",
            details={"missing_entitlements": missing},
        )


@dataclasses.dataclass(frozen=True)
class AuthRequirement:
    """The audience and entitlements that an auth decorator requires of a view's callers."""

    audience: Audience
    entitlements: frozenset[str]

    def enforce(self) -> Principal:
        """Authenticate the request, make its principal current and check the entitlements; raise 401 or 403."""
        principal = authenticate(self.audience)
        set_current_principal(principal)
        check_entitlements(principal, self.entitlements)
        return principal


def auth_requirement(view: Callable[..., Any]) -> AuthRequirement | None:
    """Return the requirement of the auth decorator applied to ``view`` or inside it, if any.

    ``functools.wraps`` copies the attribute to each enclosing wrapper, so an outer
    guard such as ``with_rate_limit`` can authenticate before it counts, whichever
    order the decorators come in.
    """
    requirement = getattr(view, _REQUIREMENT_ATTRIBUTE, None)
    return requirement if isinstance(requirement, AuthRequirement) else None


def _auth_decorator(audience: Audience, entitlements: tuple[str, ...]) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    requirement = AuthRequirement(audience, frozenset(entitlements))
    unknown = sorted(requirement.entitlements - CATALOGUE[audience])
    if unknown:
        raise ValueError(
            f"Unknown {audience.value} entitlement {unknown[0]!r}; "
            f"the catalogue has: {', '.join(sorted(CATALOGUE[audience]))}."
        )

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            denial = run_guard(requirement.enforce)
            if denial is not None:
                return denial

            return current_app.ensure_sync(view)(*args, **kwargs)

        setattr(wrapper, _REQUIREMENT_ATTRIBUTE, requirement)
        setattr(wrapper, VIEW_AUDIENCE_ATTRIBUTE, audience)
        return wrapper

    return decorator


def with_provider_auth(*entitlements: str) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Require a provider credential holding every one of ``entitlements``.

    The principal is then available as :data:`flask_federation.current_principal`.
    Unknown entitlement names raise :class:`ValueError` when the route is decorated.
    """
    return _auth_decorator(Audience.PROVIDER, entitlements)


def with_developer_auth(*entitlements: str) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Require a developer credential holding every one of ``entitlements``; see :func:`with_provider_auth`."""
    return _auth_decorator(Audience.DEVELOPER, entitlements)
