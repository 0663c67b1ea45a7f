"""``with_idempotency_required``: run a write once per ``Idempotency-Key`` and replay its response.

The rules, in the order the decorator applies them:

1. Scope. A key belongs to the caller (audience and provider or developer id, or the
   value of ``scope=``), the HTTP method and the route's URL rule.
2. The header must be present (else 400 ``idempotency_key_missing``) and valid (else
   400 ``idempotency_key_invalid``); see :func:`.keys.parse_key`.
3. Claim. The first request claims the key with a random owner token and a lease of
   ``FEDERATION_IDEMPOTENCY_LEASE``. A store failure returns 503 and the handler never runs.
4. A key already held is compared by fingerprint first: a different request is 422
   ``idempotency_key_reused``. Otherwise a stored response is replayed byte for byte
   with ``Idempotent-Replayed: true``; a claim within its lease is 409
   ``idempotency_key_in_use`` with ``Retry-After``; a claim whose lease expired without
   a result is 409 ``idempotency_outcome_unknown`` and is never run again.
5. After the handler: 5xx responses and exceptions release the key, so a retry runs.
   A rejection (400, 401, 403, 413, 415, 422 or 429) releases it too, unless the
   handler wrote to the database first. Every other response is stored for
   ``FEDERATION_IDEMPOTENCY_TTL``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import secrets
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from flask import Response, current_app, request

from ..auth.decorators import auth_requirement
from ..auth.principal import get_current_principal
from ..errors import IdempotencyKeyInUse, IdempotencyKeyReused, IdempotencyOutcomeUnknown, ServiceUnavailable
from ..guard import run_guard
from ..models import utcnow
from ..request_body import read_body
from ..request_id import HEADER as REQUEST_ID_HEADER
from ..request_id import get_request_id
from ..state import get_state
from ..statements import database_write_count
from .keys import HEADER, REPLAYED_HEADER, lookup_key, parse_key, request_fingerprint
from .store import IdempotencyStore, StoredResponse, StoreUnavailable

logger = logging.getLogger("flask_federation.idempotency")

P = ParamSpec("P")
R = TypeVar("R")

#: Key of the store in ``get_state().components``.
COMPONENT = "idempotency_store"
#: Attribute that marks a view as idempotency-guarded, for the OpenAPI document.
IDEMPOTENT_ATTRIBUTE = "__federation_idempotent__"
#: Response headers a replay repeats; others (cookies above all) are never stored.
STORED_HEADERS = frozenset({"content-type", "location", "etag", "link"})
#: Statuses that reject a request as it stood; they release the key unless the handler wrote to the database.
RELEASED_CLIENT_ERRORS = frozenset({400, 401, 403, 413, 415, 422, 429})
#: Seconds a client should wait after a 503 for an unavailable store.
STORE_RETRY_AFTER_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class _Claim:
    store: IdempotencyStore
    lookup_key: str
    owner: str


def get_idempotency_store() -> IdempotencyStore:
    """Return the current app's idempotency store."""
    store: IdempotencyStore = get_state().components[COMPONENT]
    return store


def _caller_scope(view: Callable[..., Any], scope: Callable[[], str] | None) -> str:
    if scope is not None:
        value = scope()
        if not value:
            raise RuntimeError(
                f"The scope function of with_idempotency_required on endpoint {request.endpoint!r} returned "
                f"{value!r}. Return a stable, non-empty id of the caller."
            )

        return f"scope:{value}"

    principal = get_current_principal()
    if principal is None:
        requirement = auth_requirement(view)
        if requirement is None:
            raise RuntimeError(
                f"with_idempotency_required on endpoint {request.endpoint!r} has no caller to scope keys by. "
                "Stack it with with_provider_auth or with_developer_auth, or pass scope= a function "
                "that returns a stable id of the authenticated caller."
            )

        # Check the entitlements too, not only the credential: a stored response must not be
        # replayed to a caller that the auth decorator inside would reject with 403.
        principal = requirement.enforce()

    return f"{principal.audience.value}:{principal.subject_id}"


def _claim(view: Callable[..., Any], scope: Callable[[], str] | None) -> _Claim | Response:
    """Claim the request's key and return the claim, or return the replay, or raise the error response."""
    caller = _caller_scope(view, scope)
    key = parse_key(request.headers.get(HEADER))
    fingerprint = request_fingerprint(request, read_body())
    route = request.url_rule.rule if request.url_rule is not None else request.path
    claim = _Claim(get_idempotency_store(), lookup_key(caller, request.method, route, key), secrets.token_hex(16))
    now = utcnow()
    try:
        record = claim.store.claim(claim.lookup_key, fingerprint, claim.owner, now)
    except StoreUnavailable:
        # NOTE: a claim that timed out may still reach the store. Retries with this key then
        # get 409 until the claim expires, although the handler never ran.
        raise ServiceUnavailable(
            "The idempotency store is unavailable, so the request was not run. "
            f"Retry after {STORE_RETRY_AFTER_SECONDS} seconds with the same Idempotency-Key.",
            headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        ) from None

    if record is None:
        return claim

    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused()

    if record.response is not None:
        logger.info("Replaying the stored %s response of an Idempotency-Key on %s", record.response.status, route)
        return _replay(record.response)

    if record.lease_expires_at > now:
        wait = max(1, math.ceil((record.lease_expires_at - now).total_seconds()))
        raise IdempotencyKeyInUse(headers={"Retry-After": str(wait)})

    raise IdempotencyOutcomeUnknown(details={"lease_expired_at": record.lease_expires_at.isoformat()})


def _replay(stored: StoredResponse) -> Response:
    response = current_app.response_class(stored.body, status=stored.status, headers=list(stored.headers))
    response.headers[REPLAYED_HEADER] = "true"
    request_id = get_request_id()
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id

    return response


def _call_view(view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    try:
        result = current_app.ensure_sync(view)(*args, **kwargs)
    except Exception as error:
        # Render the error with the app's and blueprint's handlers here, so that its
        # response can be stored; without a handler this re-raises.
        result = current_app.handle_user_exception(error)

    return current_app.make_response(result)


def _keeps_result(status: int, wrote: bool) -> bool:
    # NOTE: a handler that commits and then fails with a 5xx releases its key, so a retry
    # runs it again. Handlers should commit as their last step, as the tenant services do.
    if status >= 500:
        return False

    return wrote or status not in RELEASED_CLIENT_ERRORS


def _store_response(claim: _Claim, response: Response) -> None:
    # A streamed or file response is buffered here, because a replay needs the whole body.
    response.direct_passthrough = False
    headers = tuple((name, value) for name, value in response.headers.items() if name.lower() in STORED_HEADERS)
    stored = StoredResponse(response.status_code, headers, response.get_data())
    try:
        completed = claim.store.complete(claim.lookup_key, claim.owner, stored, utcnow())
    except StoreUnavailable:
        # The store logged the outage. The key stays claimed, so a retry is never run twice.
        return

    if not completed:
        logger.warning(
            "Could not store the %s response of an Idempotency-Key on %s: the claim expired before the handler "
            "finished, so a retry may run again. Raise FEDERATION_IDEMPOTENCY_TTL above the longest handler run.",
            response.status_code,
            request.path,
        )


def _release(claim: _Claim) -> None:
    try:
        claim.store.release(claim.lookup_key, claim.owner)
    except StoreUnavailable:
        # The store logged the outage. The key stays claimed until it expires, so retries
        # get 409 and nothing runs twice.
        pass


def _run_claimed(claim: _Claim, view: Callable[..., Any], args: Any, kwargs: Any) -> Response:
    writes_before = database_write_count()
    try:
        response = _call_view(view, args, kwargs)
    except BaseException:
        _release(claim)
        raise

    if _keeps_result(response.status_code, database_write_count() > writes_before):
        _store_response(claim, response)
    else:
        _release(claim)

    return response


def _decorate(view: Callable[P, R], scope: Callable[[], str] | None) -> Callable[P, Any]:
    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        outcome: list[_Claim | Response] = []
        denial = run_guard(lambda: outcome.append(_claim(view, scope)))
        if denial is not None:
            return denial

        if isinstance(outcome[0], Response):
            return outcome[0]

        return _run_claimed(outcome[0], view, args, kwargs)

    setattr(wrapper, IDEMPOTENT_ATTRIBUTE, True)
    return wrapper


@overload
def with_idempotency_required(view: Callable[P, R], /) -> Callable[P, Any]: ...


@overload
def with_idempotency_required(
    *, scope: Callable[[], str] | None = None
) -> Callable[[Callable[P, R]], Callable[P, Any]]: ...


def with_idempotency_required(
    view: Callable[P, R] | None = None, /, *, scope: Callable[[], str] | None = None
) -> Callable[P, Any] | Callable[[Callable[P, R]], Callable[P, Any]]:
    """Require an ``Idempotency-Key`` header: run the view once per key and replay its response to repeats.

    Use it bare (``@with_idempotency_required``) or called. Keys are scoped by the
    caller, so stack it with :func:`with_provider_auth` or :func:`with_developer_auth`
    in either order. On a host route with its own authentication, pass ``scope``: a
    function that returns a stable id of the authenticated caller. Without either, the
    first request raises :class:`RuntimeError`. The module docstring lists every rule.
    """
    if view is not None:
        return _decorate(view, scope)

    def decorator(inner: Callable[P, R]) -> Callable[P, Any]:
        return _decorate(inner, scope)

    return decorator
