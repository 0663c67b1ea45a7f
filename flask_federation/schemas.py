"""Marshmallow schemas: request validation and response shapes, and the source of the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate, validates

from .errors import ValidationFailed
from .models import TENANT_STATUSES
from .models.audit import OUTCOMES

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
REGION_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
MAX_METADATA_BYTES = 8 * 1024
MAX_METADATA_KEYS = 50


def load_or_raise(schema: Schema, data: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Load ``data`` with ``schema``, raising 422 ``validation_error`` with per-field details."""
    try:
        loaded: dict[str, Any] = schema.load(data, partial=partial)
    except ValidationError as error:
        messages = error.normalized_messages()  # type: ignore[no-untyped-call]
        raise ValidationFailed(details=messages) from None

    return loaded


#: Metadata key of a dump-only field: the message that rejects it on input, instead of the generic one.
READ_ONLY_MESSAGE = "read_only_message"
_DEFAULT_READ_ONLY_MESSAGE = "Read-only field: the server sets it, so remove it from the request."


class StrictSchema(Schema):
    """A schema that rejects unknown and read-only fields instead of dropping them."""

    class Meta:
        unknown = RAISE

    def handle_error(self, error: ValidationError, data: Any, *, many: bool, **kwargs: Any) -> None:
        """Replace marshmallow's "Unknown field." with a read-only message for the schema's dump-only fields.

        Marshmallow treats a dump-only field sent on input as unknown. The caller is
        better served by learning that the field exists but is read-only.
        """
        messages = error.messages
        if many or not isinstance(messages, dict):
            return

        rewritten = dict(messages)
        for name, field in self.fields.items():
            key = field.data_key or name
            if field.dump_only and key in rewritten:
                rewritten[key] = [field.metadata.get(READ_ONLY_MESSAGE, _DEFAULT_READ_ONLY_MESSAGE)]

        if rewritten != messages:
            raise ValidationError(rewritten, data=data) from None


class FullMatch(validate.Regexp):
    """A ``Regexp`` validator that must match the whole value.

    Python's ``$`` also matches before a final newline, so ``re.match`` alone would
    accept ``"eu-west-1\\n"``. The pattern text stays ECMAScript-compatible for the
    OpenAPI document, where ``$`` has no such exception.
    """

    def __init__(self, pattern: str, *, error: str) -> None:
        super().__init__(pattern, error=error)
        self._full_pattern = re.compile(pattern)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self._full_pattern.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))

        return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable_text_reason(text: str) -> str | None:
    """Return why the database cannot store ``text``, or None when it can.

    PostgreSQL text and JSONB reject the NUL character, and no UTF-8 encoding
    can encode an unpaired surrogate, which JSON's ``\\ud800`` escapes can produce.
    """
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the database cannot store"

    if _SURROGATE.search(text) is not None:
        return "contains an unpaired surrogate (\\ud800 to \\udfff), which is not valid Unicode text"

    return None


def validate_text(value: str) -> None:
    reason = unstorable_text_reason(value)
    if reason is not None:
        raise ValidationError(f"The value {reason}. Remove that character.")


def _check_metadata_values(metadata: dict[str, Any]) -> None:
    # Iterative, so that metadata built in Python (not parsed from a depth-checked body) cannot exhaust the stack.
    pending: list[tuple[str, Any]] = [("", metadata)]
    while pending:
        path, value = pending.pop()
        reason: str | None = None
        if isinstance(value, str):
            reason = unstorable_text_reason(value)
        elif isinstance(value, float) and not math.isfinite(value):
            reason = "is not a finite number, and JSON has no NaN or infinity"
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = f"{path}[{key!a}]"
                key_reason = unstorable_text_reason(key) if isinstance(key, str) else None
                if key_reason is not None:
                    raise ValidationError(f"The metadata key at {key_path} {key_reason}. Remove that character.")

                pending.append((key_path, item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))

        if reason is not None:
            raise ValidationError(f"The metadata value at {path} {reason}. Send another value.")


def validate_metadata(value: dict[str, Any]) -> None:
    if len(value) > MAX_METADATA_KEYS:
        raise ValidationError(f"Metadata may have at most {MAX_METADATA_KEYS} keys; it has {len(value)}.")

    _check_metadata_values(value)

    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise ValidationError(f"Metadata may be at most {MAX_METADATA_BYTES} bytes as JSON; it is {size}.")


class TenantSchema(StrictSchema):
    """A tenant as the API returns it; the read-only fields are rejected on input."""

    id = fields.String(dump_only=True, attribute="public_id", metadata={"description": "Opaque public id, `ten_...`."})
    provider_id = fields.String(
        dump_only=True,
        attribute="provider.public_id",
        metadata={"description": "Public id of the owning provider, `prv_...`."},
    )
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), validate_text])
    slug = fields.String(
        required=True,
        validate=FullMatch(
            SLUG_PATTERN,
            error="Slug must be 1 to 63 lowercase letters, digits or hyphens, not starting or ending with a hyphen.",
        ),
        metadata={"description": "Unique per provider."},
    )
    status = fields.String(load_default="active", validate=validate.OneOf(TENANT_STATUSES))
    region = fields.String(
        required=True,
        validate=FullMatch(
            REGION_PATTERN, error="Region must be 1 to 32 lowercase letters, digits or hyphens, such as 'eu-west-1'."
        ),
    )
    metadata = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=64)), attribute="metadata_", load_default=dict
    )
    created_at = fields.AwareDateTime(dump_only=True, format="iso")
    updated_at = fields.AwareDateTime(dump_only=True, format="iso")

    @validates("metadata")
    def _check_metadata(self, value: dict[str, Any], **_: Any) -> None:
        validate_metadata(value)


class TenantUpdateSchema(TenantSchema):
    """Changes to a tenant: every writable field is optional, and the region is fixed at creation."""

    region = fields.String(
        dump_only=True,
        metadata={
            "description": "Fixed when the tenant is created.",
            READ_ONLY_MESSAGE: (
                "The region is fixed when the tenant is created, because moving a tenant's data "
                "between regions is a migration, not an update. Create a new tenant in the other region."
            )
        },
    )

    def on_bind_field(self, field_name: str, field_obj: fields.Field[Any]) -> None:
        # A PATCH sends only what changes: nothing is required, and no default fills a missing field.
        field_obj.required = False
        field_obj.load_default = missing


class TenantListQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(TENANT_STATUSES))
    limit = fields.Integer(metadata={"description": "Page size, 1 to the configured maximum (default 100)."})
    cursor = fields.String(
        validate=validate.Length(min=1, max=512), metadata={"description": "`next_cursor` of the previous page."}
    )


class TenantPageSchema(Schema):
    items = fields.List(fields.Nested(TenantSchema), required=True)
    next_cursor = fields.String(
        allow_none=True, required=True, metadata={"description": "Cursor of the next page, or null on the last page."}
    )


class CredentialInfoSchema(Schema):
    id = fields.String(
        allow_none=True,
        metadata={
            "description": "Key id (never the secret); for an OIDC token its `jti` or `sha256:` and a hash prefix; "
            "for a browser login `oidc-login-...`."
        },
    )
    created_at = fields.AwareDateTime(allow_none=True, format="iso")
    expires_at = fields.AwareDateTime(allow_none=True, format="iso")
    last_used_at = fields.AwareDateTime(allow_none=True, format="iso")


class PrincipalInfoSchema(Schema):
    audience = fields.String(required=True)
    id = fields.String(required=True, metadata={"description": "Public id of the developer, `dev_...`."})
    name = fields.String(required=True)


class RateLimitStatusSchema(Schema):
    policy = fields.String(required=True, metadata={"description": "Name of the caller's audience policy."})
    limit = fields.Integer(required=True, metadata={"description": "Quota of the policy per window."})
    remaining = fields.Integer(required=True, metadata={"description": "Quota left, after this request."})
    reset = fields.Integer(required=True, metadata={"description": "Seconds until the strategy frees quota again."})


class RecentRequestsSchema(Schema):
    window_seconds = fields.Integer(
        required=True, metadata={"description": "Length of the window: the current UTC hour and the 23 before it."}
    )
    by_auth_method = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Your authenticated requests in the window per auth method, this one included."},
    )
    source = fields.String(
        required=True,
        metadata={
            "description": "`redis` (all server processes), `memory` (only the process that answered) "
            "or `unavailable` (the counts could not be read; `by_auth_method` is empty)."
        },
    )


class DiagnosticsSchema(Schema):
    principal = fields.Nested(PrincipalInfoSchema, required=True)
    auth_method = fields.String(required=True, metadata={"description": "`api_key`, `oidc_bearer` or `oidc_session`."})
    recent_requests = fields.Nested(RecentRequestsSchema, required=True)
    credential = fields.Nested(CredentialInfoSchema, required=True)
    entitlements = fields.List(fields.String(), required=True)
    feature_flags = fields.Dict(keys=fields.String(), values=fields.Boolean(), required=True)
    server_time = fields.AwareDateTime(required=True, format="iso")
    version = fields.String(required=True, metadata={"description": "Version of flask-federation."})
    request_id = fields.String(required=True)
    rate_limit = fields.Nested(
        RateLimitStatusSchema,
        required=True,
        allow_none=True,
        metadata={
            "description": "Standing under the audience policy, read without counting; "
            "null when rate limiting is disabled or its storage is unreachable."
        },
    )


def validate_utc_range(value: dt.datetime) -> None:
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError("The time falls outside the years 1 to 9999 in UTC. Send a time within that range.") from None


class AuditListQuerySchema(StrictSchema):
    action = fields.String(
        validate=[validate.Length(min=1, max=100), validate_text],
        metadata={"description": "Only this action, such as `tenant.read`."},
    )
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    since = fields.AwareDateTime(
        format="iso",
        validate=validate_utc_range,
        metadata={"description": "Only events at or after this ISO 8601 time; needs a timezone."},
    )
    until = fields.AwareDateTime(
        format="iso",
        validate=validate_utc_range,
        metadata={"description": "Only events before this ISO 8601 time; needs a timezone."},
    )
    limit = fields.Integer(metadata={"description": "Page size, 1 to the configured maximum (default 100)."})
    cursor = fields.String(
        validate=validate.Length(min=1, max=512), metadata={"description": "`next_cursor` of the previous page."}
    )


class AuditEventSchema(Schema):
    """One audit event, exactly as stored and hashed; see docs/federation/audit.md."""

    event_id = fields.String(required=True, metadata={"description": "Opaque event id, `evt_...`."})
    chain = fields.String(required=True, metadata={"description": "`provider:prv_...` or `developer:dev_...`."})
    sequence = fields.Integer(required=True, metadata={"description": "Position in the chain, gap-free from 1."})
    prev_hash = fields.String(required=True, metadata={"description": "Hash of the previous event of the chain."})
    hash = fields.String(required=True, metadata={"description": "Hash over the canonical encoding of this event."})
    occurred_at = fields.String(required=True, metadata={"description": "ISO 8601 time in UTC, with microseconds."})
    schema_version = fields.Integer(required=True)
    request_id = fields.String(allow_none=True, required=True)
    actor_type = fields.String(
        required=True, metadata={"description": "`provider`, `developer`, `system` or `anonymous`."}
    )
    actor_id = fields.String(allow_none=True, required=True)
    actor_name = fields.String(
        allow_none=True, required=True, metadata={"description": "Display name of the actor when the event occurred."}
    )
    credential_id = fields.String(
        allow_none=True, required=True, metadata={"description": "Key id of the credential used; never the secret."}
    )
    auth_method = fields.String(allow_none=True, required=True)
    action = fields.String(required=True, metadata={"description": "Such as `tenant.list` or `key.issue`."})
    kind = fields.String(required=True, metadata={"description": "`read` or `write`."})
    target_type = fields.String(allow_none=True, required=True)
    target_id = fields.String(allow_none=True, required=True)
    owner_id = fields.String(allow_none=True, required=True, metadata={"description": "Owning provider or developer."})
    outcome = fields.String(required=True, metadata={"description": "`success`, `denied` or `error`."})
    http_status = fields.Integer(allow_none=True, required=True)
    error_code = fields.String(allow_none=True, required=True)
    client_address = fields.String(allow_none=True, required=True)
    user_agent = fields.String(allow_none=True, required=True)
    result_count = fields.Integer(allow_none=True, required=True, metadata={"description": "Items a list returned."})
    changes = fields.Raw(
        allow_none=True, required=True, metadata={"description": "Redacted `before` and `after` of a write."}
    )


class AuditPageSchema(Schema):
    items = fields.List(fields.Nested(AuditEventSchema), required=True)
    next_cursor = fields.String(
        allow_none=True, required=True, metadata={"description": "Cursor of the next page, or null on the last page."}
    )


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine-readable error code."})
    message = fields.String(required=True)
    details = fields.Raw(metadata={"description": "Per-field errors or other structured detail."})
    request_id = fields.String(required=True)


class ErrorEnvelopeSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"enum": [False]})
    error = fields.Nested(ErrorDetailSchema, required=True)
