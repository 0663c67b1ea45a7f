"""The exception tree behind every federation error response.

Each error carries a stable machine-readable ``error_code`` that becomes
``error.code`` in the JSON envelope. The HTTP errors also subclass the matching
werkzeug exception, so host code that catches werkzeug's classes keeps working,
and the blueprints' error handlers render them as the federation envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from werkzeug import exceptions as http


class FederationError(Exception):
    """Base class of every error the federation API reports to a client."""

    status_code: int = 500
    error_code: str = "internal_error"
    default_message: ClassVar[str] = (
        "The server failed to process the request. Retry later, and report the request id if it persists."
    )

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.extra_headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)


class BadRequest(FederationError, http.BadRequest):
    status_code = 400
    error_code = "bad_request"
    default_message = "The request is malformed."


class InvalidJSON(BadRequest):
    error_code = "invalid_json"
    default_message = "The request body is not valid JSON. Send a JSON object with Content-Type: application/json."


class InvalidCursor(BadRequest):
    error_code = "invalid_cursor"
    default_message = (
        "The cursor is invalid, was altered, or belongs to another caller or filter. "
        "Start again from the first page without a cursor."
    )


class OIDCLoginFailed(BadRequest):
    error_code = "oidc_login_failed"
    default_message = "The OIDC login failed. Start again from the login route."


class Unauthorized(FederationError, http.Unauthorized):
    status_code = 401
    error_code = "unauthorized"
    default_message = "Authentication is required. Send 'Authorization: Bearer <key or token>'."


class Forbidden(FederationError, http.Forbidden):
    status_code = 403
    error_code = "forbidden"
    default_message = "The credential lacks an entitlement this route requires."


class CSRFRejected(Forbidden):
    error_code = "csrf_rejected"
    default_message = (
        "A browser session may send this method only from a page of the same origin. "
        "Send the request from this site, or authenticate with 'Authorization: Bearer <token>'."
    )


class NotFound(FederationError, http.NotFound):
    status_code = 404
    error_code = "not_found"
    default_message = "The requested resource was not found."


class FederationDisabled(NotFound):
    error_code = "federation_disabled"
    default_message = "The federation API is disabled on this server."


class MethodNotAllowed(FederationError, http.MethodNotAllowed):
    status_code = 405
    error_code = "method_not_allowed"

    def __init__(self, allowed: Iterable[str], message: str | None = None) -> None:
        methods = sorted(set(allowed))
        super().__init__(
            message or f"This route does not accept that method. Use one of: {', '.join(methods)}.",
            headers={"Allow": ", ".join(methods)},
        )


class Conflict(FederationError, http.Conflict):
    status_code = 409
    error_code = "conflict"
    default_message = "The request conflicts with the current state of the resource."


class PayloadTooLarge(FederationError, http.RequestEntityTooLarge):
    status_code = 413
    error_code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(FederationError, http.UnsupportedMediaType):
    status_code = 415
    error_code = "unsupported_media_type"
    default_message = "Send the request body as JSON with Content-Type: application/json."


class ValidationFailed(FederationError, http.UnprocessableEntity):
    status_code = 422
    error_code = "validation_error"
    default_message = "The request has invalid fields. See error.details for each field."


class TooManyRequests(FederationError, http.TooManyRequests):
    status_code = 429
    error_code = "rate_limited"
    default_message = "Rate limit exceeded. Wait for the time in Retry-After, then retry."


class InternalError(FederationError, http.InternalServerError):
    status_code = 500
    error_code = "internal_error"


class ServiceUnavailable(FederationError, http.ServiceUnavailable):
    status_code = 503
    error_code = "service_unavailable"
    default_message = "A backing service is unavailable. Retry after the time in Retry-After."


class IdempotencyKeyMissing(BadRequest):
    error_code = "idempotency_key_missing"
    default_message = "This route requires an Idempotency-Key header. Send a unique value, such as a UUID, per operation."


class IdempotencyKeyInvalid(BadRequest):
    error_code = "idempotency_key_invalid"
    default_message = (
        "The Idempotency-Key header must be 1 to 255 printable ASCII characters. Send a UUID, for example."
    )


class IdempotencyKeyReused(ValidationFailed):
    error_code = "idempotency_key_reused"
    default_message = (
        "This Idempotency-Key was already used with a different request (method, path, query, content type "
        "or body). Use a new key for a new request, or resend the original request unchanged."
    )


class IdempotencyKeyInUse(Conflict):
    error_code = "idempotency_key_in_use"
    default_message = (
        "A request with this Idempotency-Key is still running. Retry after the time in Retry-After "
        "to get its result."
    )


class IdempotencyOutcomeUnknown(Conflict):
    error_code = "idempotency_outcome_unknown"
    default_message = (
        "The first request with this Idempotency-Key stopped without recording its outcome, so its effects "
        "may or may not have happened. Check the resource's current state, then retry with a new Idempotency-Key."
    )


_BY_STATUS: dict[int, type[FederationError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: TooManyRequests,
    503: ServiceUnavailable,
}


def from_http_exception(error: http.HTTPException) -> FederationError:
    """Translate a werkzeug HTTP error raised outside our code into a federation error."""
    if isinstance(error, FederationError):
        return error

    if isinstance(error, http.MethodNotAllowed):
        return MethodNotAllowed(error.valid_methods or ())

    status = error.code or 500
    error_class = _BY_STATUS.get(status)
    if error_class is not None:
        return error_class()

    generic = FederationError(error.description or None)
    generic.status_code = status
    generic.error_code = "http_error" if status < 500 else "internal_error"
    return generic
