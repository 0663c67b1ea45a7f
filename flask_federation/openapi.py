"""The OpenAPI 3.1 document, generated with apispec from the marshmallow schemas.

Each federation view carries its operation description through :func:`documented`;
:func:`build_openapi` walks the app's URL map, so a route without a description
fails the build instead of going undocumented.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from .idempotency.decorator import IDEMPOTENT_ATTRIBUTE
from .idempotency.keys import HEADER as IDEMPOTENCY_HEADER
from .idempotency.keys import MAX_KEY_LENGTH as MAX_IDEMPOTENCY_KEY_LENGTH
from .idempotency.keys import REPLAYED_HEADER
from .ratelimit.decorator import rate_limit_specs
from .schemas import ErrorEnvelopeSchema
from .version import package_version

F = TypeVar("F", bound=Callable[..., Any])

_ATTRIBUTE = "__federation_openapi__"
_ERROR_DESCRIPTIONS = {
    400: "Malformed request: `invalid_json`, `invalid_cursor`, `bad_request`, `idempotency_key_missing`, `idempotency_key_invalid`.",
    401: "Missing or invalid credential: `unauthorized`. The `WWW-Authenticate` header names the problem.",
    403: "The credential lacks an entitlement: `forbidden`; or a browser session sent a state-changing request "
    "from another origin: `csrf_rejected`.",
    404: "Not found, or owned by another provider: `not_found`.",
    409: "Conflict: `conflict`, `idempotency_key_in_use` (retry after `Retry-After` seconds), "
    "`idempotency_outcome_unknown` (check the resource, then retry with a new key).",
    413: "Body too large: `payload_too_large`.",
    415: "Body is not JSON: `unsupported_media_type`.",
    422: "Invalid fields: `validation_error`, `idempotency_key_reused`. `error.details` lists each field.",
    429: "Rate limit exceeded: `rate_limited`. `error.details` holds `policy`, `limit`, `window` and `retry_after`; "
    "retry after `Retry-After` seconds.",
    503: "A backing store or the OpenID provider is unavailable: `service_unavailable`. "
    "Retry after `Retry-After` seconds.",
}
_REQUEST_ID_HEADER = {
    "description": "The request id: the caller's valid `X-Request-ID`, or a generated one.",
    "schema": {"type": "string"},
}
_RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": "The policies that counted this request, as in draft-ietf-httpapi-ratelimit-headers-11: "
        '`"<policy>";q=<quota>;w=<window seconds>`, comma-separated. Absent when the request was not counted.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'The caller\'s standing under each policy: `"<policy>";r=<remaining>;t=<seconds until quota frees>`. '
        "Absent when the request was not counted or the rate-limit storage was unreachable.",
        "schema": {"type": "string"},
    },
}
_RETRY_AFTER_HEADER = {
    "description": "Whole seconds to wait before retrying, at least 1.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
# Rate-limited routes authenticate before counting, so their 401 and 403 responses carry no RateLimit fields.
_UNCOUNTED_STATUSES = frozenset({401, 403})
#: The credentials every operation accepts, any one of them. Which ones a server accepts depends on
#: its settings, and the OIDC issuer is deployment-specific, so the committed document describes the
#: OpenID Connect discovery URL in words instead of declaring an ``openIdConnect`` scheme.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A legacy API key: `ffp_...` for providers, `ffd_...` for developers. "
        "Accepted while `FEDERATION_LEGACY_AUTH_ENABLED` is true; afterwards it gets 401 `unauthorized`.",
    },
    "oidcAccessToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An OAuth 2 access token (JWT) from the platform's OpenID provider, accepted while "
        "`FEDERATION_OIDC_ENABLED` is true. Its discovery document is at "
        "`{FEDERATION_OIDC_ISSUER}/.well-known/openid-configuration`. Request the token with the resource "
        "indicator (`aud`) of your audience (`FEDERATION_OIDC_PROVIDER_AUDIENCE` or "
        "`FEDERATION_OIDC_DEVELOPER_AUDIENCE`) and the scopes named by each operation's `x-entitlement`; "
        "the token must carry your `provider_id` or `developer_id` claim.",
    },
    "oidcSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "session",
        "description": "The browser session after a login at `{prefix}/oidc/{audience}/login`, while "
        "`FEDERATION_OIDC_LOGIN_ENABLED` is true. The cookie name is the host app's `SESSION_COOKIE_NAME`. "
        "POST, PATCH and DELETE with this session need a same-origin `Sec-Fetch-Site` or `Origin` header.",
    },
}
_PATH_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
_IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": IDEMPOTENCY_HEADER,
    "required": True,
    "description": (
        "A unique value per operation, such as a UUID: 1 to 255 printable ASCII characters, bare or as a "
        "quoted string. A repeat with the same key and the same request replays the stored response; with a "
        "different request it is a 422 `idempotency_key_reused`. Keys are kept for `FEDERATION_IDEMPOTENCY_TTL`."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
}
_REPLAYED_HEADER = {
    "description": "`true` when this response is the stored response of an earlier request with the same key.",
    "schema": {"type": "string", "enum": ["true"]},
}
#: Errors that every idempotency-guarded route can return, whatever its own list contains.
_IDEMPOTENCY_ERRORS = (400, 409, 422, 503)


@dataclasses.dataclass(frozen=True)
class Operation:
    """The OpenAPI description of one federation view."""

    summary: str
    tag: str
    entitlement: str | None
    query: type[Schema] | None
    body: type[Schema] | None
    response: type[Schema] | None
    status: int
    errors: tuple[int, ...]
    headers: Mapping[str, Any]
    description: str | None
    rate_limited: bool


def documented(
    summary: str,
    *,
    tag: str,
    entitlement: str | None = None,
    query: type[Schema] | None = None,
    body: type[Schema] | None = None,
    response: type[Schema] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    headers: Mapping[str, Any] | None = None,
    rate_limited: bool = False,
) -> Callable[[F], F]:
    """Attach an OpenAPI operation description to a view; the view's docstring becomes its description.

    ``rate_limited`` documents the RateLimit header fields and the 429 and 503
    responses of ``with_rate_limit``. The document build fails when the flag does
    not match whether the view is rate-limited.
    """

    def decorator(view: F) -> F:
        operation = Operation(
            summary,
            tag,
            entitlement,
            query,
            body,
            response,
            status,
            errors,
            dict(headers or {}),
            view.__doc__,
            rate_limited,
        )
        setattr(view, _ATTRIBUTE, operation)
        return view

    return decorator


def _envelope(schema_name: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"$ref": f"#/components/schemas/{schema_name}"} if schema_name else {"type": "null"}
    return {
        "type": "object",
        "required": ["ok", "data"],
        "properties": {"ok": {"type": "boolean", "const": True}, "data": data},
    }


def _response_headers(operation: Operation, status: int, idempotent: bool) -> dict[str, Any]:
    headers = {"X-Request-ID": _REQUEST_ID_HEADER, **operation.headers}
    if idempotent:
        headers[REPLAYED_HEADER] = _REPLAYED_HEADER

    if operation.rate_limited and status not in _UNCOUNTED_STATUSES:
        headers.update(_RATE_LIMIT_HEADERS)

    if status in {429, 503}:
        headers["Retry-After"] = _RETRY_AFTER_HEADER

    return headers


def _operation_dict(operation: Operation, path_parameters: list[str], idempotent: bool) -> dict[str, Any]:
    errors = set(operation.errors) | ({429, 503} if operation.rate_limited else set())
    if idempotent:
        errors.update(_IDEMPOTENCY_ERRORS)

    success_name = operation.response.__name__.removesuffix("Schema") if operation.response else None
    responses: dict[str, Any] = {
        str(operation.status): {
            "description": "Success.",
            "headers": _response_headers(operation, operation.status, idempotent),
            "content": {"application/json": {"schema": _envelope(success_name)}},
        }
    }
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _ERROR_DESCRIPTIONS.get(status, "Error."),
            "headers": _response_headers(operation, status, idempotent),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
        }

    parameters: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "string"}} for name in path_parameters
    ]
    if idempotent:
        parameters.append(_IDEMPOTENCY_PARAMETER)
    if operation.query is not None:
        parameters.append({"in": "query", "schema": operation.query})

    result: dict[str, Any] = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "security": [{name: []} for name in SECURITY_SCHEMES],
        "responses": responses,
    }
    if operation.description:
        result["description"] = " ".join(operation.description.split())

    if operation.entitlement:
        result["x-entitlement"] = operation.entitlement

    if parameters:
        result["parameters"] = parameters

    if operation.body is not None:
        result["requestBody"] = {"required": True, "content": {"application/json": {"schema": operation.body}}}

    return result


def build_openapi(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI document of the federation routes registered on ``app``.

    Paths are relative to the URL prefix, which the ``servers`` entry carries, so the
    document is the same whatever prefix a deployment chooses.
    """
    from .blueprints import API_BLUEPRINTS
    from .state import get_state

    prefix = get_state(app).settings.url_prefix
    spec = APISpec(
        title="flask-federation API",
        version=package_version(),
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Partner-facing federation API: provider tenant management and developer diagnostics."},
        servers=[{"url": prefix}],
    )
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)

    spec.components.schema("ErrorEnvelope", schema=ErrorEnvelopeSchema)

    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda item: item.rule):
        if rule.endpoint.partition(".")[0] not in API_BLUEPRINTS:
            continue

        view = app.view_functions[rule.endpoint]
        operation = getattr(view, _ATTRIBUTE, None)
        if operation is None:
            raise RuntimeError(
                f"Route {rule.rule} ({rule.endpoint}) has no OpenAPI description; decorate it with @documented."
            )

        if operation.rate_limited != bool(rate_limit_specs(view)):
            raise RuntimeError(
                f"Route {rule.rule} ({rule.endpoint}): @documented(rate_limited={operation.rate_limited}) does not "
                "match whether the view has @with_rate_limit; make them agree."
            )

        if operation.response is not None:
            name = operation.response.__name__.removesuffix("Schema")
            if name not in spec.components.schemas:
                spec.components.schema(name, schema=operation.response)

        path = _PATH_PARAMETER.sub(r"{\1}", rule.rule.removeprefix(prefix))
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = _operation_dict(
                operation, _PATH_PARAMETER.findall(rule.rule), bool(getattr(view, IDEMPOTENT_ATTRIBUTE, False))
            )

    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])

    return spec.to_dict()


def render_openapi(app: Flask) -> str:
    """Return the document as stable, indented JSON: the form committed to ``docs/api/openapi.json``."""
    return json.dumps(build_openapi(app), indent=2, sort_keys=True) + "\n"
