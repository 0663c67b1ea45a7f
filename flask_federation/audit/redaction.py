"""Redaction: the one allow-list serialiser that every audit event passes before it is stored.

:func:`serialize_event` keeps only the known event fields, coerces each to its
type and length, and cleans every string: API keys (``ffp_...``/``ffd_...``),
bearer tokens, JWTs and ``name=value`` pairs with a sensitive name are replaced
with :data:`REDACTED`, and control characters are escaped. In the free-form
``changes`` object, the value of every key that looks sensitive is replaced at
every depth, lists included.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"

#: Fragments of key names whose values are never recorded. Matched case-insensitively as
#: substrings of the key with ``-``, ``_`` and other punctuation removed, so ``api_key``
#: matches ``X-Api-Key`` and ``token`` matches ``access_token`` and ``refreshToken``.
DEFAULT_SENSITIVE_KEYS = (
    "authorization",
    "cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "client_secret",
    "private_key",
)

#: Nesting deeper than this in ``changes`` is replaced with a marker, so a hostile
#: structure cannot exhaust the stack.
MAX_DEPTH = 32

# The key id (ff[pd]_ + 12 characters) is not secret, but anything longer that starts
# like a key is treated as a whole or partial key and removed.
API_KEY_PATTERN = re.compile(r"ff[pd]_[0-9A-Za-z]{12}_[0-9A-Za-z]{4,}")
# Each pattern may start only where its run of characters starts (the lookbehinds), so a
# long attacker-chosen string such as a user agent costs linear time, not quadratic.
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9])(bearer)\s+[^\s,;\"']+")
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_.\-])(?P<name>[A-Za-z0-9_.\-]{1,128})(?P<separator>[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s&;,\"']+)"
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control, format (such as bidirectional overrides), surrogate and line/paragraph separator characters.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def redact_credentials(text: str) -> str:
    """Replace API keys and JWTs in ``text`` with :data:`REDACTED`, leaving everything else as it is."""
    return _JWT.sub(REDACTED, API_KEY_PATTERN.sub(REDACTED, text))


def normalize_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


class Redactor:
    """Cleans strings and nested values with the built-in and configured sensitive key names."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        fragments = {normalize_key(key) for key in (*DEFAULT_SENSITIVE_KEYS, *extra_keys)}
        self._fragments = tuple(sorted(fragment for fragment in fragments if fragment))

    def is_sensitive(self, key: str) -> bool:
        normalized = normalize_key(key)
        return any(fragment in normalized for fragment in self._fragments)

    def clean_string(self, value: str, max_length: int | None = None) -> str:
        """Return ``value`` with credentials replaced and control characters escaped, cut to ``max_length``."""
        cleaned = API_KEY_PATTERN.sub(REDACTED, value)
        cleaned = _JWT.sub(REDACTED, cleaned)
        cleaned = _BEARER.sub(lambda match: f"{match.group(1)} {REDACTED}", cleaned)
        cleaned = _ASSIGNMENT.sub(self._redact_assignment, cleaned)
        cleaned = _escape_unsafe(cleaned)
        if max_length is not None and len(cleaned) > max_length:
            cleaned = cleaned[: max_length - 3] + "..."

        return cleaned

    def clean_value(self, value: Any, depth: int = 0) -> Any:
        """Return ``value`` as JSON-compatible data with sensitive keys and credentials redacted."""
        if depth > MAX_DEPTH:
            return "[too deep]"

        if value is None or isinstance(value, bool | int):
            return value

        if isinstance(value, float):
            # NaN and infinity are not JSON; PostgreSQL would reject them.
            return value if math.isfinite(value) else str(value)

        if isinstance(value, str):
            return self.clean_string(value)

        if isinstance(value, enum.Enum):
            return self.clean_value(value.value, depth + 1)

        if isinstance(value, dt.datetime | dt.date):
            return value.isoformat()

        if isinstance(value, Mapping):
            cleaned: dict[str, Any] = {}
            for key, item in value.items():
                name = str(key)
                cleaned[self.clean_string(name)] = REDACTED if self.is_sensitive(name) else self.clean_value(
                    item, depth + 1
                )
            return cleaned

        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            return [self.clean_value(item, depth + 1) for item in items]

        # Anything else could carry a secret in its repr, so only its type is recorded.
        return f"[{type(value).__name__}]"

    def _redact_assignment(self, match: re.Match[str]) -> str:
        if not self.is_sensitive(match.group("name")) or match.group("value") == REDACTED:
            return match.group(0)

        return f"{match.group('name')}{match.group('separator')}{REDACTED}"


def _escape_unsafe(value: str) -> str:
    if value.isprintable():
        return value

    parts: list[str] = []
    for character in value:
        if character in _ESCAPES:
            parts.append(_ESCAPES[character])
        elif unicodedata.category(character) in _UNSAFE_CATEGORIES:
            parts.append(f"\\u{ord(character):04x}")
        else:
            parts.append(character)

    return "".join(parts)


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """The cleaning rule of one event field: its kind and, for strings, the column's length."""

    kind: str
    max_length: int | None = None


#: Range of the ``int`` fields, whose columns are 32-bit ``INTEGER`` in models/audit.py. PostgreSQL rejects a
#: value outside it, and a rejected event would block the events batched with it (``FEDERATION_AUDIT_BATCH_READS``).
INT_FIELD_RANGE = range(-(2**31), 2**31)

#: The allow-list: every field an event may carry. The lengths match models/audit.py.
EVENT_FIELDS: dict[str, FieldSpec] = {
    "event_id": FieldSpec("str", 40),
    "occurred_at": FieldSpec("datetime"),
    "schema_version": FieldSpec("int"),
    "request_id": FieldSpec("str", 128),
    "actor_type": FieldSpec("str", 16),
    "actor_id": FieldSpec("str", 64),
    "actor_name": FieldSpec("str", 200),
    "credential_id": FieldSpec("str", 128),
    "auth_method": FieldSpec("str", 32),
    "action": FieldSpec("str", 100),
    "kind": FieldSpec("str", 8),
    "target_type": FieldSpec("str", 64),
    "target_id": FieldSpec("str", 200),
    "owner_id": FieldSpec("str", 64),
    "outcome": FieldSpec("str", 16),
    "http_status": FieldSpec("int"),
    "error_code": FieldSpec("str", 64),
    "client_address": FieldSpec("str", 64),
    "user_agent": FieldSpec("str", 512),
    "result_count": FieldSpec("int"),
    "changes": FieldSpec("json"),
}


def serialize_event(fields: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """Return the storable form of an event: allowed fields only, each cleaned; other keys are dropped.

    Raises ``ValueError`` for an ``int`` field outside :data:`INT_FIELD_RANGE`.
    """
    event: dict[str, Any] = {}
    for name, spec in EVENT_FIELDS.items():
        value = fields.get(name)
        if value is None:
            event[name] = None
        elif spec.kind == "str":
            event[name] = redactor.clean_string(str(value), spec.max_length)
        elif spec.kind == "int":
            event[name] = int(value)
            if event[name] not in INT_FIELD_RANGE:
                raise ValueError(
                    f"Audit field {name} must be between {INT_FIELD_RANGE.start} and {INT_FIELD_RANGE.stop - 1}, "
                    f"got {value!r}."
                )
        elif spec.kind == "datetime":
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise ValueError(f"Audit field {name} must be a timezone-aware datetime, got {value!r}.")
            event[name] = value.astimezone(dt.UTC)
        else:
            event[name] = redactor.clean_value(value)

    return event
