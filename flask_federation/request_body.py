"""Reading JSON request bodies with the federation's limits and errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import request
from marshmallow import Schema
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import InvalidJSON, PayloadTooLarge, UnsupportedMediaType
from .schemas import load_or_raise
from .state import get_state

# Python's json module recurses per nesting level; a cap well below the
# interpreter's recursion limit turns a deeply nested body into a 400, not a 500.
MAX_JSON_DEPTH = 32


def _check_nesting(raw: bytes) -> None:
    # Count brackets before parsing, because json.loads itself can overflow the stack on deep input.
    level = 0
    in_string = False
    escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            level += 1
            if level > MAX_JSON_DEPTH:
                raise InvalidJSON(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.")
        elif byte in (0x5D, 0x7D):
            level -= 1


def _reject_constant(name: str) -> NoReturn:
    # Python's json module accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259, section 6).
    raise ValueError(f"{name} is not a JSON number; send a finite number or a string")


def read_body() -> bytes:
    """Return the raw body, cached for later readers, or raise 413 past ``FEDERATION_MAX_BODY_BYTES``."""
    limit = get_state().settings.max_body_bytes
    too_large = PayloadTooLarge(f"The request body exceeds {limit} bytes. Send a smaller body.")
    # Werkzeug (3.1) rejects a Content-Length above max_content_length, but stops reading a
    # longer chunked body at that limit without an error. Reading one byte more detects the longer body.
    request.max_content_length = limit + 1
    try:
        body = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None

    if len(body) > limit:
        raise too_large

    return body


def read_json_object() -> dict[str, Any]:
    """Return the request body as a JSON object, or raise 413, 415 or 400 ``invalid_json``."""
    if not request.is_json:
        raise UnsupportedMediaType()

    raw = read_body()

    _check_nesting(raw)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidJSON(f"The request body is not valid JSON: {error}.") from None

    if not isinstance(body, dict):
        raise InvalidJSON("The request body must be a JSON object.")

    return body


def load_query(schema: Schema, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate query parameters with ``schema``, raising 422 with per-parameter details."""
    return load_or_raise(schema, request.args if args is None else args)
