"""Entitlement checks that every service runs before it touches the database."""

from __future__ import annotations

from ..auth.decorators import check_entitlements
from ..auth.principal import Principal
from ..entitlements import Audience
from ..errors import Forbidden


def require(principal: Principal, audience: Audience, *entitlements: str) -> None:
    """Raise 403 unless ``principal`` is of ``audience`` and holds ``entitlements``.

    Services call this first, so a denied call never reaches the database even when a
    host app calls the service directly, without the HTTP decorators.
    """
    if principal.audience is not audience:
        raise Forbidden(f"This operation is for {audience.value} credentials only.")

    check_entitlements(principal, frozenset(entitlements))
