"""Browser login through the OpenID provider: ``{prefix}/oidc``.

``GET /<audience>/login?next=/path`` redirects to the provider with PKCE (S256),
``state``, ``nonce`` and the audience's resource indicator. ``GET
/<audience>/callback`` checks the state, redeems the code, checks the ID token
(signature, issuer, audience, nonce) and the access token, and stores the
login in the session before redirecting to ``next``. ``POST /logout`` ends the
login and returns, or redirects to, the provider's end-session URL.

These routes are for browsers and respond with redirects, so they are not in the
OpenAPI document of the API; docs/federation/contracts.md lists them. Every
failure is an error envelope, and a failed login stores nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import requests
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from flask import Blueprint, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from ..auth.oidc_claims import claimed_subject_id, entitlements_for_scopes, granted_scopes, load_owner
from ..auth.oidc_client import FederationOAuth2App, client_name
from ..auth.oidc_component import OIDCComponent
from ..auth.oidc_session import SessionLogin, check_same_origin, clear_login, store_login
from ..entitlements import Audience
from ..envelope import success_response
from ..errors import NotFound, OIDCLoginFailed, ServiceUnavailable
from ..oidc.errors import IdentityProviderUnavailable, InvalidTokenError, OIDCConfigurationError
from ..redirects import safe_next_path
from ..state import get_state
from .errors import install_error_handlers

NAME = "federation_oidc"

logger = logging.getLogger("flask_federation.oidc")

# Pending logins per audience kept in the session; older ones are dropped so
# that repeated clicks on "log in" cannot grow the session cookie without bound.
MAX_PENDING_LOGINS = 3

# OAuth error codes are short ASCII words (RFC 6749 section 4.1.2.1); anything else is not echoed.
_MAX_ERROR_CODE_LENGTH = 64


def _component() -> OIDCComponent:
    component: OIDCComponent = get_state().components["oidc"]
    return component


def _audience(name: str) -> Audience:
    try:
        return Audience(name)
    except ValueError:
        raise NotFound(f"There is no login for {name[:40]!r}. Use 'provider' or 'developer'.") from None


def _default_next() -> str:
    return str(get_state().settings.oidc_default_next)


def _drop_old_pending_logins(audience: Audience) -> None:
    prefix = f"_state_{client_name(audience)}_"
    pending = sorted(
        (key for key in session if key.startswith(prefix)),
        key=lambda key: float((session.get(key) or {}).get("exp") or 0),
    )
    for key in pending[: max(0, len(pending) - (MAX_PENDING_LOGINS - 1))]:
        session.pop(key, None)


def login(audience_name: str) -> ResponseReturnValue:
    audience = _audience(audience_name)
    component = _component()
    client = component.login_client(audience)
    next_path = safe_next_path(request.args.get("next"), _default_next())
    redirect_uri = url_for(f"{NAME}.callback", audience_name=audience.value, _external=True)

    authorization = client.create_authorization_url(redirect_uri, resource=component.audience_uri(audience))
    _drop_old_pending_logins(audience)
    client.save_authorize_data(
        state=authorization["state"],
        redirect_uri=redirect_uri,
        code_verifier=authorization["code_verifier"],
        nonce=authorization["nonce"],
        next=next_path,
    )
    return redirect(authorization["url"], 302)


def callback(audience_name: str) -> ResponseReturnValue:
    audience = _audience(audience_name)
    component = _component()
    client = component.login_client(audience)

    state = request.args.get("state")
    if not state:
        raise OIDCLoginFailed("The login callback has no state parameter. Start again from the login route.")

    pending: dict[str, Any] | None = client.framework.get_state_data(session, state)
    if pending is None:
        raise OIDCLoginFailed(
            "The login state is unknown, expired, already used or from another browser. "
            f"Start again at {component.login_path(audience)}."
        )

    provider_error = request.args.get("error")
    if provider_error is not None:
        client.framework.clear_state_data(session, state)
        code = provider_error if provider_error.isascii() and len(provider_error) <= _MAX_ERROR_CODE_LENGTH else "invalid"
        raise OIDCLoginFailed(f"The identity provider ended the login with error {code!r}. Start again from the login route.")

    tokens = _redeem_code(component, client, audience)
    login = _login_from_tokens(component, audience, tokens)
    store_login(login)
    logger.info("Browser login of %s %s (login %s)", audience.value, login.subject_id, login.credential_id)
    return redirect(safe_next_path(pending.get("next"), _default_next()), 303)


def _redeem_code(component: OIDCComponent, client: FederationOAuth2App, audience: Audience) -> dict[str, Any]:
    """Redeem the authorization code and check the ID token; Authlib removes the state first, so it works once."""
    settings = component.settings
    try:
        with component.provider_errors():
            tokens: dict[str, Any] = client.authorize_access_token(
                resource=component.audience_uri(audience),
                leeway=int(settings.oidc_leeway_seconds),
                claims_options={
                    "iss": {"essential": True, "value": client.server_metadata["issuer"]},
                    "aud": {"essential": True, "value": settings.oidc_client_id},
                },
            )
    except MismatchingStateError:
        raise OIDCLoginFailed("The login state is unknown or already used. Start again from the login route.") from None
    except OAuthError as error:
        raise OIDCLoginFailed(
            f"The identity provider rejected the authorization code ({error.error}). Start again from the login route."
        ) from None
    except JoseError as error:
        raise OIDCLoginFailed(
            f"The ID token is invalid ({type(error).__name__}: {error.error}). Start again from the login route."
        ) from None
    except requests.RequestException as error:
        with component.provider_errors():
            raise IdentityProviderUnavailable(f"Redeeming the code failed: {type(error).__name__}.") from None
    finally:
        # Authlib keeps the token response on flask.g; nothing here needs it after this call.
        client.token = None

    if "userinfo" not in tokens or not tokens.get("access_token"):
        raise OIDCLoginFailed("The identity provider returned no ID token or no access token. Check the client's scopes.")

    return tokens


def _login_from_tokens(component: OIDCComponent, audience: Audience, tokens: dict[str, Any]) -> SessionLogin:
    """Map the checked ID token and access token to the login of a known provider or developer."""
    id_claims = tokens["userinfo"]
    try:
        access_claims = component.validator(audience).validate(tokens["access_token"])
    except InvalidTokenError as error:
        raise OIDCLoginFailed(f"The access token of the login is not valid for this API: {error.reason}") from None
    except (IdentityProviderUnavailable, OIDCConfigurationError):
        with component.provider_errors():
            raise

    if access_claims.get("sub") != id_claims.get("sub"):
        raise OIDCLoginFailed("The ID token and the access token name different users. Start again from the login route.")

    claim_name = component.subject_claim(audience)
    from_id_token = claimed_subject_id(id_claims, claim_name)
    from_access_token = claimed_subject_id(access_claims, claim_name)
    if from_id_token is not None and from_access_token is not None and from_id_token != from_access_token:
        raise OIDCLoginFailed(f"The ID token and the access token carry different {claim_name} claims.")

    subject_id = from_id_token or from_access_token
    owner = load_owner(audience, subject_id) if subject_id is not None else None
    if owner is None:
        raise OIDCLoginFailed(
            f"The signed-in account is not linked to a known {audience.value}: its tokens carry no valid {claim_name} "
            "or name an unknown one. Ask the platform to link the account."
        )

    settings = component.settings
    entitlements = entitlements_for_scopes(granted_scopes(access_claims), audience, settings.oidc_scope_map)
    return SessionLogin(
        audience=audience,
        subject_id=owner.public_id,
        entitlements=tuple(sorted(entitlements)),
        credential_id=f"oidc-login-{secrets.token_hex(8)}",
        expires_at=time.time() + float(settings.oidc_session_lifetime_seconds),
        id_token=tokens.get("id_token"),
    )


def logout() -> ResponseReturnValue:
    """End the browser login; with an ID token, also return the provider's end-session URL."""
    check_same_origin()
    login = clear_login()
    component = _component()
    settings = component.settings
    end_session_url: str | None = None
    if login is not None and login.id_token is not None:
        end_session_url = _end_session_url(component, login)

    next_path = safe_next_path(request.args.get("next"), _default_next())
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return redirect(end_session_url or next_path, 303)

    return success_response(
        {
            "logged_out": login is not None,
            "end_session_url": end_session_url,
            "post_logout_redirect_uri": settings.oidc_post_logout_redirect_uri,
        }
    )


def _end_session_url(component: OIDCComponent, login: SessionLogin) -> str | None:
    try:
        metadata = component.metadata()
    except ServiceUnavailable:
        # The local logout already happened; an unreachable provider only loses the single sign-out.
        return None

    if metadata.end_session_endpoint is None:
        return None

    client = component.login_client(login.audience)
    settings = component.settings
    logout_url: dict[str, Any] = client.create_logout_url(
        post_logout_redirect_uri=settings.oidc_post_logout_redirect_uri,
        id_token_hint=login.id_token,
        client_id=settings.oidc_client_id,
    )
    return str(logout_url["url"])


def create_oidc_blueprint() -> Blueprint:
    blueprint = Blueprint(NAME, __name__)
    install_error_handlers(blueprint)
    blueprint.add_url_rule("/<audience_name>/login", "login", login, methods=["GET"])
    blueprint.add_url_rule("/<audience_name>/callback", "callback", callback, methods=["GET"])
    blueprint.add_url_rule("/logout", "logout", logout, methods=["POST"])
    return blueprint
