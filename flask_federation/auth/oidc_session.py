"""The browser login kept in the Flask session, and the same-origin check that guards it.

A completed login stores one :class:`SessionLogin` under :data:`SESSION_KEY`;
a new login of either audience replaces it. The auth guards accept it as the
principal of its own audience only, and only while OIDC login is enabled.

CSRF: the session cookie is sent by the browser on its own, so a request that
changes state (any method but GET, HEAD and OPTIONS) is accepted with session
auth only when the browser marks it as coming from this origin: ``Sec-Fetch-Site:
same-origin``, or, from browsers that do not send that header, an ``Origin``
equal to this request's scheme and host. Everything else gets 403
``csrf_rejected``. Behind a proxy, the app must see the external scheme and host
(for example through werkzeug's ``ProxyFix``) for the ``Origin`` comparison.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface

from ..config import OIDC_LOGIN_ENABLED, ConfigurationError
from ..entitlements import CATALOGUE, Audience
from ..errors import CSRFRejected, Unauthorized
from .authenticate import challenge_headers
from .oidc_claims import load_owner
from .principal import AUTH_METHOD_OIDC_SESSION, Principal

SESSION_KEY = "_federation_oidc"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclasses.dataclass(frozen=True)
class SessionLogin:
    """One completed browser login, as stored in the session."""

    audience: Audience
    subject_id: str
    entitlements: tuple[str, ...]
    #: Random id of this login, the ``credential_id`` of its principal.
    credential_id: str
    #: Unix time after which the login is no longer accepted.
    expires_at: float
    #: The ID token, kept for ``id_token_hint`` at logout. It is not accepted as a credential.
    id_token: str | None

    def to_session(self) -> dict[str, Any]:
        return {
            "audience": self.audience.value,
            "subject_id": self.subject_id,
            "entitlements": list(self.entitlements),
            "credential_id": self.credential_id,
            "expires_at": self.expires_at,
            "id_token": self.id_token,
        }

    @classmethod
    def from_session(cls, data: Any) -> SessionLogin | None:
        """Rebuild a login from session data, or return None when the data has another shape."""
        try:
            return cls(
                audience=Audience(data["audience"]),
                subject_id=str(data["subject_id"]),
                entitlements=tuple(str(name) for name in data["entitlements"]),
                credential_id=str(data["credential_id"]),
                expires_at=float(data["expires_at"]),
                id_token=None if data.get("id_token") is None else str(data["id_token"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def store_login(login: SessionLogin) -> None:
    session[SESSION_KEY] = login.to_session()


def load_login() -> SessionLogin | None:
    data = session.get(SESSION_KEY)
    return None if data is None else SessionLogin.from_session(data)


def clear_login() -> SessionLogin | None:
    """Remove the login from the session and return it, if there was one."""
    data = session.pop(SESSION_KEY, None)
    return None if data is None else SessionLogin.from_session(data)


def check_same_origin() -> None:
    """Raise 403 ``csrf_rejected`` unless the browser marks the request as same-origin (see the module docstring)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site == "same-origin":
            return

        raise CSRFRejected(details={"sec_fetch_site": fetch_site[:32]})

    origin = request.headers.get("Origin")
    expected = f"{request.scheme}://{request.host}"
    if origin is None or origin.lower() != expected.lower():
        raise CSRFRejected(details={"expected_origin": expected})


def authenticate_session(audience: Audience, login_path: str) -> Principal | None:
    """Return the principal of the session's login for ``audience``, None without a login, or raise.

    Raises 401 when the login expired, belongs to the other audience, or its
    provider or developer no longer exists, and 403 ``csrf_rejected`` for a
    state-changing request that is not same-origin. ``login_path`` is named in
    the messages.
    """
    login = load_login()
    if login is None:
        if SESSION_KEY in session:
            clear_login()

        return None

    if login.expires_at <= time.time():
        clear_login()
        raise Unauthorized(f"The browser login has expired. Log in again at {login_path}.", headers=challenge_headers())

    if login.audience is not audience:
        raise Unauthorized(
            f"This browser is logged in as a {login.audience.value}, but this route needs a {audience.value}. "
            f"Log in at {login_path}, or send a {audience.value} credential as 'Authorization: Bearer <token>'.",
            headers=challenge_headers(),
        )

    if request.method not in SAFE_METHODS:
        check_same_origin()

    owner = load_owner(audience, login.subject_id)
    if owner is None:
        clear_login()
        raise Unauthorized(
            f"The {audience.value} of this browser login no longer exists. Log in again at {login_path}.",
            headers=challenge_headers(),
        )

    return Principal(
        audience=audience,
        subject_id=owner.public_id,
        subject_pk=owner.id,
        display_name=owner.name,
        credential_id=login.credential_id,
        # Filtered again on every request, so a narrowed catalogue applies to logins made before it changed.
        entitlements=frozenset(login.entitlements) & CATALOGUE[audience],
        auth_method=AUTH_METHOD_OIDC_SESSION,
    )


def check_session_available(app: Flask) -> None:
    """Raise at start-up when login is enabled but Flask's cookie session has no ``SECRET_KEY`` to sign with."""
    if isinstance(app.session_interface, SecureCookieSessionInterface) and not app.secret_key:
        raise ConfigurationError(
            f"SECRET_KEY is not set, but {OIDC_LOGIN_ENABLED} is true. The browser login is kept in "
            "Flask's signed session cookie, so set SECRET_KEY to a long random value."
        )


def apply_session_cookie_defaults(app: Flask) -> None:
    """Harden the session cookie for browser login, keeping every value that differs from Flask's default.

    Sets ``SESSION_COOKIE_SAMESITE="Lax"`` and ``SESSION_COOKIE_HTTPONLY=True``,
    and ``SESSION_COOKIE_SECURE=True`` unless the app is in debug or testing
    mode. A key still at Flask's default counts as not set by the host; to keep
    Flask's default anyway, set the key after ``init_app``.
    """
    wanted: dict[str, Any] = {"SESSION_COOKIE_HTTPONLY": True, "SESSION_COOKIE_SAMESITE": "Lax"}
    if not (app.debug or app.testing):
        wanted["SESSION_COOKIE_SECURE"] = True

    for key, value in wanted.items():
        if app.config.get(key) == Flask.default_config[key]:
            app.config[key] = value
