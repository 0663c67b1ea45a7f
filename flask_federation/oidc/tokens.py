"""Validation of JWT bearer access tokens issued by an OpenID provider."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError, UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

from .errors import InvalidTokenError, OIDCConfigurationError
from .jwks import JWKSCache, UnknownKeyError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "AccessTokenValidator",
]

logger = logging.getLogger("flask_federation.oidc.tokens")

# JWS algorithms whose verification key is public. HMAC algorithms are left
# out on purpose: with them, anyone holding the verification key can sign.
ASYMMETRIC_ALGORITHMS = frozenset(
    {
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512", "ES256K",
        "EdDSA", "Ed25519", "Ed448",
    }
)  # fmt: skip

DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")

# Header parameters that point at or embed a verification key. Honouring any of
# them would let the token choose its own key, so tokens carrying them are
# rejected and the URLs are never fetched.
KEY_REFERENCE_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})

# Claims that only ID tokens carry (OpenID Connect Core 1.0, sections 2 and 3.3.2.11).
ID_TOKEN_ONLY_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})

# "typ" values accepted after lower-casing and dropping an "application/"
# prefix, as RFC 7515 section 4.1.9 allows.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "jwt"})

_BASE64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


class _AllowListRegistry(JWSRegistry):
    """A JWS registry that accepts exactly the configured algorithms.

    joserfc's own registry warns about ``EdDSA`` on every lookup because RFC
    9864 deprecates the name. The operator chose the allow-list, so the
    warning is dropped.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


class AccessTokenValidator:
    """Validate JWT access tokens from one issuer for one audience.

    ``validate`` returns the claims of a valid token and raises
    ``InvalidTokenError`` otherwise. The checks, in order:

    * The token is at most ``max_token_bytes`` long, checked before any parsing,
      and is three base64url segments (a JWS in compact serialization).
    * The header is a JSON object without repeated parameters. ``alg`` is in
      ``algorithms``, compared case-sensitively, so ``none`` in any spelling
      and the HMAC algorithms always fail.
    * The header has none of ``jku``, ``jwk``, ``x5u`` and ``x5c``, and no
      ``crit``, because this validator implements no JWS extension.
    * ``typ`` is ``at+jwt`` (RFC 9068) or ``JWT``, case-insensitive and with an
      optional ``application/`` prefix. A missing ``typ`` is rejected.
      ``JWT`` is accepted because many providers type their access tokens
      that way. ID tokens are recognized by their claims (the last check).
    * ``kid`` is present and names a key in the issuer's JWKS (see
      ``JWKSCache`` for when an unknown kid triggers a refetch). The signature
      is verified with joserfc against that key only.
    * ``iss`` equals ``issuer`` exactly. ``aud`` equals ``audience`` or is a
      list that contains it.
    * ``exp`` is present and not passed. ``nbf`` and ``iat``, when present, are
      not in the future. All three allow ``leeway_seconds`` of clock skew.
    * The payload has none of ``nonce``, ``at_hash``, ``c_hash`` and
      ``s_hash``. These claims mark an ID token (OpenID Connect Core 1.0), and
      an ID token must not be accepted as an access token.

    NOTE: an ID token typed ``JWT`` and without any of those claims passes the
    ``typ`` and claims checks. The audience check still rejects it, because an
    ID token's ``aud`` is the client id, unless ``audience`` is set to a client
    id. Configure a resource identifier as the audience. Providers that omit
    ``typ`` on access tokens are not supported.

    ``validate`` lets ``IdentityProviderUnavailable`` and
    ``OIDCConfigurationError`` through when no JWKS could ever be fetched, so
    the caller can respond with 503 instead of 401.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks: JWKSCache,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway_seconds: float = 60,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not issuer:
            raise OIDCConfigurationError("The issuer is empty. Set it to the identity provider's issuer URL.")
        if not audience:
            raise OIDCConfigurationError("The audience is empty. Set it to this API's resource identifier.")
        if leeway_seconds < 0:
            raise OIDCConfigurationError(f"leeway_seconds must not be negative, got {leeway_seconds}.")
        if max_token_bytes <= 0:
            raise OIDCConfigurationError(f"max_token_bytes must be positive, got {max_token_bytes}.")

        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.algorithms = _check_algorithms(algorithms)
        self.leeway_seconds = leeway_seconds
        self.max_token_bytes = max_token_bytes
        self._clock = clock
        self._registry = _AllowListRegistry(algorithms=sorted(self.algorithms), strict_check_header=False)

    def validate(self, token: str) -> dict[str, Any]:
        """Verify ``token`` and return its claims.

        Raises ``InvalidTokenError`` with a client-safe ``reason`` when any
        check in the class docstring fails.
        """
        try:
            return self._validate(token)
        except InvalidTokenError as exc:
            logger.debug("Rejected an access token: %s", exc.reason)
            raise

    def _validate(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise InvalidTokenError("The token is empty.")
        # The length check runs before any decoding, so an oversized token costs
        # no parsing work. Non-ASCII text is rejected next, which makes the
        # character count equal the byte count.
        if len(token) > self.max_token_bytes:
            raise InvalidTokenError(f"The token is longer than {self.max_token_bytes} bytes.")
        if not token.isascii():
            raise InvalidTokenError("The token is not a JWT: it contains non-ASCII characters.")

        segments = token.split(".")
        if len(segments) != 3:
            raise InvalidTokenError("The token is not a signed JWT: expected three dot-separated segments.")
        header_segment, payload_segment, signature_segment = segments
        if not signature_segment:
            raise InvalidTokenError("The token has no signature.")
        for segment in segments:
            if not _BASE64URL_SEGMENT.fullmatch(segment):
                raise InvalidTokenError("The token is not a JWT: a segment is not base64url.")

        header = _decode_json_segment(header_segment, "header")
        kid = self._check_header(header)

        try:
            key = self.jwks.get_key(kid)
        except UnknownKeyError:
            raise InvalidTokenError("The token is signed with a key that the issuer does not publish.") from None

        try:
            jws.deserialize_compact(token, key, registry=self._registry)
        except BadSignatureError:
            raise InvalidTokenError("The token signature is invalid.") from None
        except (JoseError, ValueError, TypeError) as exc:
            logger.debug("joserfc rejected a token signed with kid %r: %s", kid, type(exc).__name__)
            raise InvalidTokenError("The token signature could not be verified with the issuer's key.") from None

        claims = _decode_json_segment(payload_segment, "payload")
        self._check_claims(claims)
        return claims

    def _check_header(self, header: dict[str, Any]) -> str:
        """Check the JOSE header and return its ``kid``."""
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise InvalidTokenError("The token header has no signing algorithm (alg).")
        if alg not in self.algorithms:
            raise InvalidTokenError("The token's signing algorithm is not allowed.")

        if KEY_REFERENCE_HEADERS.intersection(header):
            raise InvalidTokenError("The token header names its own key (jku, jwk, x5u or x5c), which is not accepted.")
        if "crit" in header:
            raise InvalidTokenError("The token header lists critical extensions (crit) that are not supported.")

        typ = header.get("typ")
        if not isinstance(typ, str) or _normalize_media_type(typ) not in ACCESS_TOKEN_TYPES:
            raise InvalidTokenError("The token is not an access token: its type (typ) must be at+jwt or JWT.")

        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("The token header has no key id (kid).")
        return kid

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise InvalidTokenError("The token was not issued by the trusted issuer.")
        if not self._audience_matches(claims.get("aud")):
            raise InvalidTokenError("The token is not intended for this API (audience mismatch).")

        now = self._clock()
        leeway = self.leeway_seconds
        exp = claims.get("exp")
        if exp is None:
            raise InvalidTokenError("The token has no expiration time (exp).")
        if not _is_numeric_date(exp):
            raise InvalidTokenError("The token's expiration time (exp) is not a number.")
        if now >= exp + leeway:
            raise InvalidTokenError("The token has expired.")

        nbf = claims.get("nbf")
        if nbf is not None:
            if not _is_numeric_date(nbf):
                raise InvalidTokenError("The token's not-before time (nbf) is not a number.")
            if now + leeway < nbf:
                raise InvalidTokenError("The token is not valid yet (nbf).")

        iat = claims.get("iat")
        if iat is not None:
            if not _is_numeric_date(iat):
                raise InvalidTokenError("The token's issued-at time (iat) is not a number.")
            if iat > now + leeway:
                raise InvalidTokenError("The token's issued-at time (iat) is in the future.")

        if ID_TOKEN_ONLY_CLAIMS.intersection(claims):
            raise InvalidTokenError("The token is an ID token, not an access token.")

    def _audience_matches(self, aud: Any) -> bool:
        if isinstance(aud, str):
            return aud == self.audience
        if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
            return self.audience in aud
        return False


def _check_algorithms(algorithms: Iterable[str]) -> frozenset[str]:
    if isinstance(algorithms, str):
        raise OIDCConfigurationError(
            f"algorithms must be a collection of algorithm names, not the string {algorithms!r}."
        )
    allowed = frozenset(algorithms)
    if not allowed:
        raise OIDCConfigurationError("algorithms is empty. Allow at least one asymmetric algorithm such as RS256.")
    for name in sorted(allowed):
        if name.lower() == "none" or name.upper().startswith("HS"):
            raise OIDCConfigurationError(
                f"The JWS algorithm {name!r} is not allowed for access tokens, because it is not "
                "asymmetric. Use algorithms from: " + ", ".join(sorted(ASYMMETRIC_ALGORITHMS)) + "."
            )
        if name not in ASYMMETRIC_ALGORITHMS:
            raise OIDCConfigurationError(
                f"The JWS algorithm {name!r} is not supported. Use algorithms from: "
                + ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
                + "."
            )
    return allowed


def _decode_json_segment(segment: str, part: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError(f"The token {part} is not valid base64url.") from None
    try:
        value = json.loads(raw, object_pairs_hook=_reject_duplicate_members, parse_constant=_reject_constant)
    except _DuplicateMemberError:
        raise InvalidTokenError(f"The token {part} repeats a member name.") from None
    except ValueError:
        raise InvalidTokenError(f"The token {part} is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(f"The token {part} is not a JSON object.")
    return value


class _DuplicateMemberError(ValueError):
    pass


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 section 5.2 allows rejecting repeated header names. Doing so for
    # the payload too keeps this parser and joserfc's from reading different values.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateMemberError(name)
        result[name] = value
    return result


def _reject_constant(name: str) -> Any:
    # Python's json module accepts NaN and Infinity, which are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def _is_numeric_date(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _normalize_media_type(typ: str) -> str:
    lowered = typ.lower()
    return lowered.removeprefix("application/")
