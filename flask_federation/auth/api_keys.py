"""The API key format: generation, parsing, checksum and hashing.

A key reads ``ffp_<id>_<secret><checksum>`` (``ffd_`` for developers). The prefix
names the audience so a key of the wrong audience is rejected without a database
query, and lets secret scanners recognise leaked keys. The trailing CRC32
checksum rejects typos and random guesses before any lookup. Only the SHA-256
hash of the whole key is stored; the ``ffp_<id>`` part is the non-secret key id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import string
import zlib

from ..entitlements import Audience

PREFIXES: dict[Audience, str] = {Audience.PROVIDER: "ffp", Audience.DEVELOPER: "ffd"}
_AUDIENCE_BY_PREFIX = {prefix: audience for audience, prefix in PREFIXES.items()}

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
ID_LENGTH = 12
SECRET_LENGTH = 32  # 32 base62 characters carry about 190 bits.
CHECKSUM_LENGTH = 6
MAX_KEY_LENGTH = 4 + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

_KEY_PATTERN = re.compile(
    rf"^(ff[pd])_([0-9A-Za-z]{{{ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})$"
)


class MalformedKey(ValueError):
    """The string is not a well-formed API key with a valid checksum."""


@dataclasses.dataclass(frozen=True)
class ParsedKey:
    audience: Audience
    key_id: str
    secret: str


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])

    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def generate_key(audience: Audience) -> tuple[str, str]:
    """Return a new ``(key, key_id)`` pair for ``audience``."""
    key_id = f"{PREFIXES[audience]}_{_random_base62(ID_LENGTH)}"
    body = f"{key_id}_{_random_base62(SECRET_LENGTH)}"
    return body + _checksum(body), key_id


def looks_like_api_key(token: str) -> bool:
    """Tell API keys from JWTs by prefix alone, so that OIDC-only mode can name the problem."""
    return token[:4] in {f"{prefix}_" for prefix in _AUDIENCE_BY_PREFIX}


def parse_key(key: str) -> ParsedKey:
    """Split ``key`` into its parts, or raise :class:`MalformedKey` when format or checksum is wrong."""
    match = _KEY_PATTERN.match(key) if len(key) <= MAX_KEY_LENGTH else None
    if match is None:
        raise MalformedKey(
            "The API key is malformed: a key is ffp_ or ffd_, a 12-character id, an underscore and "
            f"{SECRET_LENGTH + CHECKSUM_LENGTH} letters or digits. Send the whole key as it was issued."
        )

    prefix, identifier, secret, checksum = match.groups()
    body = f"{prefix}_{identifier}_{secret}"
    if not secrets.compare_digest(_checksum(body), checksum):
        raise MalformedKey("The API key checksum does not match; check that it was copied whole.")

    return ParsedKey(_AUDIENCE_BY_PREFIX[prefix], f"{prefix}_{identifier}", secret)


def hash_key(key: str) -> str:
    """Return the hex SHA-256 of the whole key; the key carries enough entropy that no slow KDF is needed."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()
