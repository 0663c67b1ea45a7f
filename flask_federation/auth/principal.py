"""The authenticated caller of the current request, and the proxy that exposes it."""

from __future__ import annotations

import dataclasses
from typing import cast

from werkzeug.local import LocalProxy

from ..context import request_state
from ..entitlements import Audience

AUTH_METHOD_API_KEY = "api_key"
AUTH_METHOD_OIDC_BEARER = "oidc_bearer"
AUTH_METHOD_OIDC_SESSION = "oidc_session"


@dataclasses.dataclass(frozen=True)
class Principal:
    """The caller of a request: its audience, its provider or developer, and how it authenticated."""

    audience: Audience
    #: Public id of the provider (``prv_...``) or developer (``dev_...``).
    subject_id: str
    #: Database primary key of the provider or developer, used to scope queries.
    subject_pk: int
    display_name: str
    #: Key id of the API key, the OIDC token's ``jti`` (or a hash-derived id), or the browser login id; never a secret.
    credential_id: str | None
    entitlements: frozenset[str]
    auth_method: str

    @property
    def rate_limit_key(self) -> str:
        return f"{self.audience.value}:{self.subject_id}"


def get_current_principal() -> Principal | None:
    """Return the principal that an auth decorator set on this request, if any."""
    return cast("Principal | None", request_state().get("principal"))


def set_current_principal(principal: Principal) -> None:
    request_state()["principal"] = principal


#: The authenticated principal of the current request; ``None`` before an auth decorator ran.
current_principal: Principal = cast(Principal, LocalProxy(get_current_principal))
