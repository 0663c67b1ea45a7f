"""``with_provider_auth`` and ``with_developer_auth``: the public auth guards."""

from __future__ import annotations

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


def _auth_decorator(audience: Audience, entitlements: tuple[str, ...]) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    required = frozenset(entitlements)
    unknown = sorted(required - CATALOGUE[audience])
    if unknown:
        raise ValueError(
            f"Unknown {audience.value} entitlement {unknown[0]!r}; "
            f"the catalogue has: {', '.join(sorted(CATALOGUE[audience]))}."
        )

    def decorator(view: Callable[P, R]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            def guard() -> None:
                principal = authenticate(audience)
                set_current_principal(principal)
                check_entitlements(principal, required)

            denial = run_guard(guard)
            if denial is not None:
                return denial

            return current_app.ensure_sync(view)(*args, **kwargs)

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
