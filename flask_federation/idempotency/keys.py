"""The ``Idempotency-Key`` header, the request fingerprint and the scoped lookup key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable

from flask import Request

from ..errors import IdempotencyKeyInvalid, IdempotencyKeyMissing

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

# Printable ASCII, space included: the character set of a Structured Field string (RFC 8941),
# which the IETF Idempotency-Key draft makes the header's type.
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")
_QUOTED = re.compile(r'^"((?:[^"\\]|\\["\\])*)"$')


def parse_key(value: str | None) -> str:
    """Return the client's key from the header value, or raise 400 when it is missing or invalid.

    Both forms are accepted and name the same key: the bare value Stripe clients send
    (``Idempotency-Key: 8e03...``) and the quoted Structured Field string of the IETF
    draft (``Idempotency-Key: "8e03..."``).
    """
    if value is None:
        raise IdempotencyKeyMissing()

    key = value.strip()
    quoted = _QUOTED.match(key)
    if quoted is not None:
        key = re.sub(r"\\(.)", r"\1", quoted.group(1))

    if not key:
        raise IdempotencyKeyInvalid("The Idempotency-Key header is empty. Send a unique value, such as a UUID.")

    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid(
            f"The Idempotency-Key is {len(key)} characters long; the maximum is {MAX_KEY_LENGTH}. "
            "Send a shorter value, such as a UUID."
        )

    if not _PRINTABLE.match(key):
        raise IdempotencyKeyInvalid(
            "The Idempotency-Key contains a character that is not printable ASCII. "
            "Use letters, digits and punctuation only, such as a UUID."
        )

    return key


def _digest(parts: Iterable[bytes]) -> str:
    # Length-prefixed, so that no two different part lists hash the same bytes.
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)

    return digest.hexdigest()


def request_fingerprint(request: Request, body: bytes) -> str:
    """Return the SHA-256 of the request's method, path, canonical query, content type and body.

    The query is canonical: its parameters are decoded and sorted, so their order does
    not matter. The body counts byte for byte, so a retry must resend the same bytes.
    """
    query = sorted(request.args.items(multi=True))
    content_type = [request.mimetype, sorted((name.lower(), value) for name, value in request.mimetype_params.items())]
    return _digest(
        [
            request.method.encode(),
            request.path.encode(),
            json.dumps(query, ensure_ascii=False).encode(),
            json.dumps(content_type, ensure_ascii=False).encode(),
            body,
        ]
    )


def lookup_key(scope: str, method: str, route: str, key: str) -> str:
    """Return the store's key for the client's ``key``: SHA-256 of the scope, method, route and key.

    The scope names the caller, so two callers' identical keys never meet, and the
    client's key itself is never stored.
    """
    return _digest([scope.encode(), method.encode(), route.encode(), key.encode()])
