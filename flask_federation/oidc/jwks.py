"""A thread-safe cache of the issuer's public signing keys (JWKS)."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, OKPKey, RSAKey

from .discovery import fetch_json_document
from .errors import OIDCConfigurationError, OIDCError

__all__ = ["JWKSCache", "UnknownKeyError"]

logger = logging.getLogger("flask_federation.oidc.jwks")

# Key types that can verify the asymmetric algorithms the validator allows.
# Symmetric ("oct") keys are never taken from a JWKS: a published secret would
# let anyone mint tokens.
SIGNING_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})

# RSA keys below 2048 bits are breakable in practice (NIST SP 800-131A).
MIN_RSA_KEY_BITS = 2048


class UnknownKeyError(LookupError):
    """No signing key with the requested ``kid`` is in the issuer's JWKS."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"no signing key with kid {kid!r} in the issuer's JWKS")
        self.kid = kid


class JWKSCache:
    """Cache of the public signing keys published at an issuer's ``jwks_uri``.

    Refresh rules:

    * After ``ttl_seconds`` the next lookup refetches the JWKS.
    * A lookup for an unknown ``kid`` refetches at most once per
      ``refetch_cooldown_seconds``, counted from the last fetch attempt of any
      kind. So a flood of tokens with random kids cannot overload the identity
      provider, and a rotated key is still picked up without a restart.
    * When a refetch fails and keys were fetched before, the old keys keep
      serving, the next attempt waits for the cooldown, and one warning is
      logged per outage. Only when no JWKS was ever fetched does ``get_key``
      raise the fetch error (``IdentityProviderUnavailable`` or
      ``OIDCConfigurationError``). Within the cooldown after such a failure,
      lookups raise the same error again without a new fetch.
    * A successful fetch replaces the whole key set, so keys removed by the
      issuer stop verifying tokens.

    Only keys of type RSA, EC or OKP with a ``kid`` and with ``use`` absent or
    ``sig`` are kept, and only their public part.

    The cache is safe to share between threads. At most one fetch runs at a
    time. While a TTL refresh is in flight, other threads keep using the
    current keys instead of waiting for it.

    ``fetch_count`` counts HTTP fetch attempts and ``fetch_failure_count`` the
    failed ones, for tests and benchmarks.
    """

    def __init__(
        self,
        jwks_uri: str,
        *,
        ttl_seconds: float = 300,
        refetch_cooldown_seconds: float = 30,
        timeout_seconds: float = 3.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
        if refetch_cooldown_seconds < 0:
            raise ValueError(f"refetch_cooldown_seconds must not be negative, got {refetch_cooldown_seconds}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.jwks_uri = jwks_uri
        self.ttl_seconds = ttl_seconds
        self.refetch_cooldown_seconds = refetch_cooldown_seconds
        self.timeout_seconds = timeout_seconds
        self._session = session if session is not None else requests.Session()
        self._clock = clock

        # _state_lock guards the fields below and is never held during HTTP.
        # _fetch_lock is held for the whole of a fetch, so fetches never overlap.
        self._state_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._keys: dict[str, Key] | None = None
        self._refresh_due_at = 0.0
        self._last_attempt_at: float | None = None
        self._in_outage = False
        self._last_error: OIDCError | None = None
        self.fetch_count = 0
        self.fetch_failure_count = 0

    def get_key(self, kid: str) -> Key:
        """Return the public key with this ``kid``, fetching the JWKS when needed.

        Raises ``UnknownKeyError`` when the key is not in the JWKS, even after
        the refetch that the cooldown allows. Raises ``IdentityProviderUnavailable``
        or ``OIDCConfigurationError`` only when no JWKS was ever fetched.
        """
        self._refresh_if_expired()
        key = self._lookup(kid)
        if key is not None:
            return key

        self._refetch_for_unknown_kid(kid)
        key = self._lookup(kid)
        if key is None:
            raise UnknownKeyError(kid)
        return key

    def public_jwks(self, *, refetch: bool = False) -> dict[str, Any]:
        """Return the cached public keys as a JWKS document, fetching them when needed.

        With ``refetch`` the JWKS is fetched again if the cooldown allows, as
        for an unknown ``kid``. This serves libraries that verify with a whole
        key set, such as Authlib's ID token check. Raises like ``get_key`` when
        no JWKS was ever fetched.
        """
        self._refresh_if_expired()
        if refetch:
            self._refetch_for_unknown_kid("")
        with self._state_lock:
            keys = list((self._keys or {}).values())
        return {"keys": [key.as_dict(private=False) for key in keys]}

    def kids(self) -> frozenset[str]:
        """Return the key ids currently cached, without fetching."""
        with self._state_lock:
            return frozenset(self._keys or ())

    def close(self) -> None:
        """Close the HTTP session the cache uses."""
        self._session.close()

    def _lookup(self, kid: str) -> Key | None:
        with self._state_lock:
            if self._keys is None:
                return None
            return self._keys.get(kid)

    def _refresh_if_expired(self) -> None:
        with self._state_lock:
            if self._is_fresh():
                return
            have_keys = self._keys is not None

        # With keys in hand, a thread that finds a fetch already running keeps
        # using the current keys. Without keys it has to wait for the result.
        if not self._fetch_lock.acquire(blocking=not have_keys):
            return
        try:
            with self._state_lock:
                if self._is_fresh():
                    return
                if self._keys is None:
                    self._raise_if_cold_retry_too_soon()
            self._fetch()
        finally:
            self._fetch_lock.release()

    def _is_fresh(self) -> bool:
        return self._keys is not None and self._clock() < self._refresh_due_at

    def _raise_if_cold_retry_too_soon(self) -> None:
        # Without any cached key every request would otherwise wait for its own
        # fetch, so a down identity provider would get one request per API call.
        error = self._last_error
        if error is None or self._last_attempt_at is None:
            return
        if self._clock() - self._last_attempt_at < self.refetch_cooldown_seconds:
            raise type(error)(str(error))

    def _refetch_for_unknown_kid(self, kid: str) -> None:
        if not self._cooldown_elapsed():
            logger.debug("kid %r is unknown and the JWKS refetch cooldown has not elapsed", kid)
            return
        with self._fetch_lock:
            # Another thread may have fetched while this one waited for the lock.
            if self._lookup(kid) is not None or not self._cooldown_elapsed():
                return
            logger.info("Refetching the JWKS from %s because kid %r is unknown", self.jwks_uri, kid)
            self._fetch()

    def _cooldown_elapsed(self) -> bool:
        with self._state_lock:
            if self._last_attempt_at is None:
                return True
            return self._clock() - self._last_attempt_at >= self.refetch_cooldown_seconds

    def _fetch(self) -> None:
        """Fetch the JWKS and install it. The caller must have acquired ``_fetch_lock``."""
        with self._state_lock:
            started_at = self._clock()
            self._last_attempt_at = started_at
            self.fetch_count += 1

        try:
            document = fetch_json_document(
                self._session, self.jwks_uri, timeout=self.timeout_seconds, description="JWKS"
            )
            keys = _parse_key_set(document, self.jwks_uri)
        except OIDCError as exc:
            self._record_failure(exc, started_at)
            return

        with self._state_lock:
            self._keys = keys
            self._refresh_due_at = started_at + self.ttl_seconds
            self._last_error = None
            recovered = self._in_outage
            self._in_outage = False
        if recovered:
            logger.info("The JWKS at %s is reachable again", self.jwks_uri)
        logger.debug("Fetched the JWKS from %s with kids %s", self.jwks_uri, sorted(keys))

    def _record_failure(self, error: OIDCError, started_at: float) -> None:
        with self._state_lock:
            self.fetch_failure_count += 1
            self._last_error = error
            if self._keys is None:
                raise error
            self._refresh_due_at = started_at + self.refetch_cooldown_seconds
            first_failure = not self._in_outage
            self._in_outage = True
            cached_kids = sorted(self._keys)
        if first_failure:
            logger.warning(
                "Fetching the JWKS failed, so the cached keys %s keep serving until a fetch succeeds: %s",
                cached_kids,
                error,
            )
        else:
            logger.debug("Fetching the JWKS failed again: %s", error)


def _parse_key_set(document: Mapping[str, Any], jwks_uri: str) -> dict[str, Key]:
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise OIDCConfigurationError(f"The JWKS at {jwks_uri} has no 'keys' array.")

    keys: dict[str, Key] = {}
    for entry in entries:
        key = _import_signing_key(entry, jwks_uri)
        if key is None:
            continue
        kid = key.kid
        assert kid is not None  # _import_signing_key drops keys without a kid
        if kid in keys:
            logger.warning("The JWKS at %s lists kid %r more than once; the first entry is used", jwks_uri, kid)
            continue
        keys[kid] = key
    if not keys:
        logger.warning("The JWKS at %s contains no usable signing key", jwks_uri)
    return keys


def _import_signing_key(entry: Any, jwks_uri: str) -> Key | None:
    if not isinstance(entry, dict):
        logger.warning("Ignoring a JWKS entry at %s that is not a JSON object", jwks_uri)
        return None
    kid = entry.get("kid")
    kty = entry.get("kty")
    use = entry.get("use")
    if use is not None and use != "sig":
        logger.debug("Ignoring JWKS key %r with use %r", kid, use)
        return None
    if kty not in SIGNING_KEY_TYPES:
        logger.debug("Ignoring JWKS key %r of key type %r", kid, kty)
        return None
    if not isinstance(kid, str) or not kid:
        logger.warning("Ignoring a %s key without a kid in the JWKS at %s", kty, jwks_uri)
        return None

    if kty == "RSA":
        # Checked before the import, because joserfc warns on weak keys
        # (SecurityWarning) and a warning filter set to "error" would turn that
        # into an exception.
        bits = _rsa_modulus_bits(entry.get("n"))
        if bits < MIN_RSA_KEY_BITS:
            logger.warning(
                "Ignoring RSA key %r with %d bits, below the %d-bit minimum", kid, bits, MIN_RSA_KEY_BITS
            )
            return None

    try:
        imported = JWKRegistry.import_key(entry)
        # Re-import the public members only, in case the issuer published a
        # private key by mistake.
        public = JWKRegistry.import_key(imported.as_dict(private=False))
    except (JoseError, ValueError, TypeError) as exc:
        logger.warning("Ignoring JWKS key %r that failed to import: %s", kid, exc)
        return None

    if not isinstance(public, (RSAKey, ECKey, OKPKey)):
        return None
    return public


def _rsa_modulus_bits(modulus: Any) -> int:
    """Return the bit length of a JWK's base64url ``n``, or 0 when it is not valid base64url."""
    if not isinstance(modulus, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except (binascii.Error, ValueError):
        return 0
    return int.from_bytes(raw, "big").bit_length()
