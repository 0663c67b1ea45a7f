"""AccessTokenValidator against tokens minted here and keys served from a local JWKS server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import warnings
from typing import Any

import pytest
import requests
from joserfc.jwk import OctKey, OKPKey, RSAKey

from flask_federation.oidc import tokens as tokens_module
from flask_federation.oidc.errors import IdentityProviderUnavailable, InvalidTokenError, OIDCConfigurationError
from flask_federation.oidc.jwks import JWKSCache
from flask_federation.oidc.tokens import AccessTokenValidator

from .conftest import AUDIENCE, NOW, LocalHTTPServer, ManualClock, TokenMinter, b64url, sign_compact


def rejection_reason(validator: AccessTokenValidator, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        validator.validate(token)
    return caught.value.reason


def segments(token: str) -> list[str]:
    return token.split(".")


# --- tokens that pass ---------------------------------------------------------


def test_rs256_token_returns_claims(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    claims = validator.validate(minter.rsa())

    assert claims["sub"] == "federation-test"
    assert claims["provider_id"] == "prv_alice"
    assert claims["aud"] == AUDIENCE


def test_es256_token_returns_claims(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    claims = validator.validate(minter.ec())

    assert claims["iss"] == minter.issuer


def test_ps256_token_accepted(validator: AccessTokenValidator, minter: TokenMinter, rsa_key: RSAKey) -> None:
    token = sign_compact(minter.header(rsa_key, "PS256"), minter.claims(), rsa_key, "PS256")

    assert validator.validate(token)["sub"] == "federation-test"


def test_eddsa_token_accepted_without_warning(
    jwks_server: LocalHTTPServer,
    jwks_cache: JWKSCache,
    minter: TokenMinter,
    ed_key: OKPKey,
    rsa_key: RSAKey,
) -> None:
    jwks_server.serve_keys([rsa_key, ed_key])
    validator = AccessTokenValidator(minter.issuer, AUDIENCE, jwks=jwks_cache, clock=lambda: NOW)
    token = sign_compact(minter.header(ed_key, "EdDSA"), minter.claims(), ed_key, "EdDSA")

    # joserfc warns that RFC 9864 deprecates the name EdDSA. The validator
    # suppresses that warning because the operator allowed the algorithm.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        claims = validator.validate(token)

    assert claims["sub"] == "federation-test"


def test_audience_list_containing_audience_accepted(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    token = minter.rsa(aud=["urn:other:api", AUDIENCE])

    assert validator.validate(token)["aud"] == ["urn:other:api", AUDIENCE]


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "JWT", "jwt", "application/jwt"])
def test_access_token_types_accepted(validator: AccessTokenValidator, minter: TokenMinter, typ: str) -> None:
    assert validator.validate(minter.rsa(header={"typ": typ}))["sub"] == "federation-test"


def test_clock_skew_within_leeway_accepted(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    # Default leeway is 60 s: expired 30 s ago, valid from 30 s on, issued 30 s ahead.
    token = minter.rsa(exp=NOW - 30, nbf=NOW + 30, iat=NOW + 30)

    assert validator.validate(token)["sub"] == "federation-test"


def test_unknown_non_critical_header_ignored(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    # RFC 7515 section 4: recipients ignore header parameters they do not understand unless listed in crit.
    token = minter.rsa(header={"x-vendor-trace": "abc"})

    assert validator.validate(token)["sub"] == "federation-test"


# --- size and shape, checked before parsing -------------------------------------


def test_oversized_token_rejected_before_parsing(
    validator: AccessTokenValidator,
    minter: TokenMinter,
    jwks_server: LocalHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = minter.rsa(padding="x" * 9000)
    assert len(token) > validator.max_token_bytes

    def fail_if_called(segment: str, part: str) -> dict[str, Any]:
        raise AssertionError("the validator decoded a segment of an oversized token")

    monkeypatch.setattr(tokens_module, "_decode_json_segment", fail_if_called)
    reason = rejection_reason(validator, token)

    assert reason == "The token is longer than 8192 bytes."
    assert jwks_server.hit_count("/jwks") == 0


def test_token_at_size_limit_accepted(minter: TokenMinter, jwks_cache: JWKSCache) -> None:
    token = minter.rsa()
    validator = AccessTokenValidator(
        minter.issuer, AUDIENCE, jwks=jwks_cache, max_token_bytes=len(token), clock=lambda: NOW
    )

    assert validator.validate(token)["sub"] == "federation-test"


def test_one_byte_over_limit_rejected(minter: TokenMinter, jwks_cache: JWKSCache) -> None:
    token = minter.rsa()
    validator = AccessTokenValidator(
        minter.issuer, AUDIENCE, jwks=jwks_cache, max_token_bytes=len(token) - 1, clock=lambda: NOW
    )

    assert "longer than" in rejection_reason(validator, token)


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "abc.def",
        "abc.def.ghi.jkl",
        "aaa.bbb.ccc.ddd.eee",  # JWE compact serialization has five segments
    ],
)
def test_wrong_segment_count_rejected(validator: AccessTokenValidator, token: str) -> None:
    assert rejection_reason(validator, token) == (
        "The token is not a signed JWT: expected three dot-separated segments."
    )


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token.replace(".", ". ", 1),
        lambda token: "+" + token,
        lambda token: token + "=",
        lambda token: token.replace(".", "..", 1)[:-3],
    ],
    ids=["space", "plus", "padding", "empty-segment"],
)
def test_non_base64url_segment_rejected(validator: AccessTokenValidator, minter: TokenMinter, mangle: Any) -> None:
    token = mangle(minter.rsa())
    reason = rejection_reason(validator, token)

    assert "not a JWT" in reason or "expected three" in reason


def test_non_ascii_token_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert "non-ASCII" in rejection_reason(validator, minter.rsa() + "é")


def test_empty_token_rejected(validator: AccessTokenValidator) -> None:
    assert rejection_reason(validator, "") == "The token is empty."


@pytest.mark.parametrize("header", ["not json", "[1, 2]", '"a string"'])
def test_header_not_json_object_rejected(validator: AccessTokenValidator, header: str) -> None:
    token = f"{b64url(header.encode())}.{b64url(b'{}')}.{b64url(b'sig')}"

    assert "header" in rejection_reason(validator, token)


def test_repeated_header_member_rejected(validator: AccessTokenValidator, minter: TokenMinter, rsa_key: RSAKey) -> None:
    # A parser that keeps the last "alg" would see RS256; one that keeps the first would see none.
    header = '{"alg": "none", "typ": "at+jwt", "kid": "rsa-test-1", "alg": "RS256"}'
    token = sign_compact(header, minter.claims(), rsa_key, "RS256")

    assert rejection_reason(validator, token) == "The token header repeats a member name."


def test_repeated_payload_member_rejected(validator: AccessTokenValidator, minter: TokenMinter, rsa_key: RSAKey) -> None:
    claims = json.dumps(minter.claims())
    payload = (claims[:-1] + ', "aud": "urn:other:api"}').encode()
    token = sign_compact(minter.header(rsa_key, "RS256"), payload, rsa_key, "RS256")

    assert rejection_reason(validator, token) == "The token payload repeats a member name."


def test_payload_not_json_object_rejected(validator: AccessTokenValidator, minter: TokenMinter, rsa_key: RSAKey) -> None:
    token = sign_compact(minter.header(rsa_key, "RS256"), b"[1, 2, 3]", rsa_key, "RS256")

    assert rejection_reason(validator, token) == "The token payload is not a JSON object."


def test_nan_claim_rejected(validator: AccessTokenValidator, minter: TokenMinter, rsa_key: RSAKey) -> None:
    claims = json.dumps(minter.claims(exp=None))
    payload = (claims[:-1] + ', "exp": NaN}').encode()
    token = sign_compact(minter.header(rsa_key, "RS256"), payload, rsa_key, "RS256")

    assert rejection_reason(validator, token) == "The token payload is not valid JSON."


# --- algorithm ------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_none_algorithm_rejected(validator: AccessTokenValidator, minter: TokenMinter, alg: str) -> None:
    header = b64url(json.dumps({"alg": alg, "typ": "at+jwt", "kid": "rsa-test-1"}).encode())
    payload = b64url(json.dumps(minter.claims()).encode())
    # A non-empty dummy signature gets the token past the shape check to the algorithm check.
    token = f"{header}.{payload}.{b64url(b'ignored')}"

    assert rejection_reason(validator, token) == "The token's signing algorithm is not allowed."


@pytest.mark.parametrize("alg", ["none", "NONE"])
def test_unsigned_token_rejected(validator: AccessTokenValidator, minter: TokenMinter, alg: str) -> None:
    header = b64url(json.dumps({"alg": alg, "typ": "at+jwt", "kid": "rsa-test-1"}).encode())
    payload = b64url(json.dumps(minter.claims()).encode())

    assert rejection_reason(validator, f"{header}.{payload}.") == "The token has no signature."


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_algorithms_rejected(validator: AccessTokenValidator, minter: TokenMinter, alg: str) -> None:
    secret = OctKey.import_key(b"a shared secret that is long enough for hmac-sha512 use!" * 2)
    token = sign_compact({"alg": alg, "typ": "at+jwt", "kid": "rsa-test-1"}, minter.claims(), secret, alg)

    assert rejection_reason(validator, token) == "The token's signing algorithm is not allowed."


def test_hs256_signed_with_rsa_public_key_rejected(
    validator: AccessTokenValidator, minter: TokenMinter, rsa_key: RSAKey
) -> None:
    # Key confusion: the attacker uses the published RSA public key as an HMAC
    # secret. joserfc refuses to load a public key as an oct key, so the
    # attacker's signature is computed with hmac directly.
    public_pem = rsa_key.as_pem(private=False)
    header = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": rsa_key.kid}).encode())
    payload = b64url(json.dumps(minter.claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64url(signature)}"

    assert rejection_reason(validator, token) == "The token's signing algorithm is not allowed."


def test_missing_alg_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(header={"alg": None})) == (
        "The token header has no signing algorithm (alg)."
    )


def test_allowed_alg_outside_validator_list_rejected(minter: TokenMinter, jwks_cache: JWKSCache) -> None:
    validator = AccessTokenValidator(minter.issuer, AUDIENCE, jwks=jwks_cache, algorithms=["ES256"], clock=lambda: NOW)

    assert rejection_reason(validator, minter.rsa()) == "The token's signing algorithm is not allowed."


def test_alg_mismatching_key_type_rejected(validator: AccessTokenValidator, minter: TokenMinter, ec_key: Any) -> None:
    # ES256 in the header but the kid of the RSA key: the signature is from the EC key.
    token = sign_compact(minter.header(ec_key, "ES256", {"kid": "rsa-test-1"}), minter.claims(), ec_key, "ES256")

    assert rejection_reason(validator, token) == (
        "The token signature could not be verified with the issuer's key."
    )


def test_key_alg_parameter_restricts_algorithm(
    jwks_server: LocalHTTPServer, jwks_cache: JWKSCache, minter: TokenMinter
) -> None:
    # The JWK sets alg RS256, so a PS256 signature by the same key is rejected.
    key = RSAKey.generate_key(2048, parameters={"kid": "rsa-rs256-only", "alg": "RS256"}, private=True)
    jwks_server.serve_keys([key])
    validator = AccessTokenValidator(minter.issuer, AUDIENCE, jwks=jwks_cache, clock=lambda: NOW)
    token = sign_compact(minter.header(key, "PS256"), minter.claims(), key, "PS256")

    assert rejection_reason(validator, token) == (
        "The token signature could not be verified with the issuer's key."
    )


# --- header parameters ----------------------------------------------------------


@pytest.mark.parametrize("parameter", ["jku", "x5u"])
def test_key_url_headers_rejected_and_never_fetched(
    validator: AccessTokenValidator,
    minter: TokenMinter,
    http_server: LocalHTTPServer,
    rsa_key: RSAKey,
    parameter: str,
) -> None:
    http_server.serve_keys([rsa_key], path="/attacker-keys")
    token = minter.rsa(header={parameter: http_server.url("/attacker-keys")})
    reason = rejection_reason(validator, token)

    assert reason == "The token header names its own key (jku, jwk, x5u or x5c), which is not accepted."
    assert http_server.hit_count("/attacker-keys") == 0


def test_embedded_jwk_header_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    attacker_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-test-1"}, private=True)
    header = minter.header(attacker_key, "RS256", {"jwk": attacker_key.as_dict(private=False)})
    token = sign_compact(header, minter.claims(), attacker_key, "RS256")

    assert "names its own key" in rejection_reason(validator, token)


def test_x5c_header_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    token = minter.rsa(header={"x5c": [b64url(b"not really a certificate")]})

    assert "names its own key" in rejection_reason(validator, token)


@pytest.mark.parametrize(
    "header",
    [
        {"crit": ["exp"], "exp": NOW + 600},
        {"crit": ["b64"], "b64": False},
        {"crit": ["x-unknown"], "x-unknown": True},
        {"crit": []},
    ],
    ids=["exp", "b64", "unknown", "empty"],
)
def test_crit_header_rejected(validator: AccessTokenValidator, minter: TokenMinter, header: dict[str, Any]) -> None:
    assert rejection_reason(validator, minter.rsa(header=header)) == (
        "The token header lists critical extensions (crit) that are not supported."
    )


@pytest.mark.parametrize("kid", [None, "", 123])
def test_missing_or_invalid_kid_rejected(validator: AccessTokenValidator, minter: TokenMinter, kid: Any) -> None:
    assert rejection_reason(validator, minter.rsa(header={"kid": kid})) == "The token header has no key id (kid)."


def test_unknown_kid_rejected_after_one_refetch(
    validator: AccessTokenValidator, minter: TokenMinter, jwks_cache: JWKSCache
) -> None:
    validator.validate(minter.rsa())
    assert jwks_cache.fetch_count == 1

    reason = rejection_reason(validator, minter.rsa(header={"kid": "rotated-away"}))
    assert reason == "The token is signed with a key that the issuer does not publish."
    assert jwks_cache.fetch_count == 1  # the cooldown has not elapsed since the first fetch


def test_unknown_kid_triggers_refetch_after_cooldown(
    validator: AccessTokenValidator, minter: TokenMinter, jwks_cache: JWKSCache, clock: ManualClock
) -> None:
    validator.validate(minter.rsa())
    clock.advance(jwks_cache.refetch_cooldown_seconds)

    rejection_reason(validator, minter.rsa(header={"kid": "unknown-1"}))
    rejection_reason(validator, minter.rsa(header={"kid": "unknown-2"}))

    assert jwks_cache.fetch_count == 2


@pytest.mark.parametrize("typ", [None, "JOSE", "id_token+jwt", "application/jose", "dpop+jwt", 5])
def test_non_access_token_type_rejected(validator: AccessTokenValidator, minter: TokenMinter, typ: Any) -> None:
    assert rejection_reason(validator, minter.rsa(header={"typ": typ})) == (
        "The token is not an access token: its type (typ) must be at+jwt or JWT."
    )


# --- signature ------------------------------------------------------------------


def test_stripped_signature_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    header, payload, _ = segments(minter.rsa())

    assert rejection_reason(validator, f"{header}.{payload}.") == "The token has no signature."


def test_altered_signature_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    header, payload, signature = segments(minter.rsa())
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[10] ^= 0x01

    assert rejection_reason(validator, f"{header}.{payload}.{b64url(bytes(raw))}") == "The token signature is invalid."


def test_altered_payload_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    header, _, signature = segments(minter.rsa())
    forged_payload = b64url(json.dumps(minter.claims(provider_id="prv_mallory")).encode())

    assert rejection_reason(validator, f"{header}.{forged_payload}.{signature}") == "The token signature is invalid."


def test_signature_by_other_key_with_same_kid_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    attacker_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-test-1"}, private=True)
    token = sign_compact(minter.header(attacker_key, "RS256"), minter.claims(), attacker_key, "RS256")

    assert rejection_reason(validator, token) == "The token signature is invalid."


def test_ec_signature_swapped_into_rsa_token_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    rsa_header, rsa_payload, _ = segments(minter.rsa())
    _, _, ec_signature = segments(minter.ec())

    assert rejection_reason(validator, f"{rsa_header}.{rsa_payload}.{ec_signature}") == (
        "The token signature is invalid."
    )


# --- claims ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "issuer_suffix",
    ["/", "/other", ":1"],
    ids=["trailing-slash", "path", "port"],
)
def test_issuer_mismatch_rejected(validator: AccessTokenValidator, minter: TokenMinter, issuer_suffix: str) -> None:
    token = minter.rsa(iss=minter.issuer + issuer_suffix)

    assert rejection_reason(validator, token) == "The token was not issued by the trusted issuer."


def test_missing_issuer_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(iss=None)) == "The token was not issued by the trusted issuer."


@pytest.mark.parametrize(
    "aud",
    [
        None,
        "urn:federation:developer",
        AUDIENCE + ":extra",
        AUDIENCE.upper(),
        ["urn:federation:developer"],
        [],
        [AUDIENCE, 5],
        {"aud": AUDIENCE},
    ],
    ids=["missing", "other", "prefix", "case", "list-without", "empty-list", "list-non-string", "object"],
)
def test_audience_mismatch_rejected(validator: AccessTokenValidator, minter: TokenMinter, aud: Any) -> None:
    assert rejection_reason(validator, minter.rsa(aud=aud)) == (
        "The token is not intended for this API (audience mismatch)."
    )


def test_missing_exp_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(exp=None)) == "The token has no expiration time (exp)."


@pytest.mark.parametrize("exp", ["1900000000", True, [NOW + 600]])
def test_non_numeric_exp_rejected(validator: AccessTokenValidator, minter: TokenMinter, exp: Any) -> None:
    assert rejection_reason(validator, minter.rsa(exp=exp)) == "The token's expiration time (exp) is not a number."


def test_expired_token_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    token = minter.rsa(iat=NOW - 3600, exp=NOW - 61)

    assert rejection_reason(validator, token) == "The token has expired."


def test_expiry_exactly_at_leeway_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    # RFC 7519 section 4.1.4: the current time must be before exp (plus leeway).
    assert rejection_reason(validator, minter.rsa(exp=NOW - 60)) == "The token has expired."


def test_zero_leeway_rejects_just_expired(minter: TokenMinter, jwks_cache: JWKSCache) -> None:
    validator = AccessTokenValidator(minter.issuer, AUDIENCE, jwks=jwks_cache, leeway_seconds=0, clock=lambda: NOW)

    assert rejection_reason(validator, minter.rsa(exp=NOW)) == "The token has expired."


def test_not_yet_valid_token_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(nbf=NOW + 61)) == "The token is not valid yet (nbf)."


def test_non_numeric_nbf_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(nbf="soon")) == "The token's not-before time (nbf) is not a number."


def test_future_iat_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(iat=NOW + 61)) == "The token's issued-at time (iat) is in the future."


def test_non_numeric_iat_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    assert rejection_reason(validator, minter.rsa(iat=False)) == "The token's issued-at time (iat) is not a number."


@pytest.mark.parametrize("claim", ["nonce", "at_hash", "c_hash", "s_hash"])
@pytest.mark.parametrize("typ", ["JWT", "at+jwt"])
def test_id_token_claims_rejected(validator: AccessTokenValidator, minter: TokenMinter, claim: str, typ: str) -> None:
    token = minter.rsa(header={"typ": typ}, **{claim: "value"})

    assert rejection_reason(validator, token) == "The token is an ID token, not an access token."


def test_id_token_shaped_token_rejected(validator: AccessTokenValidator, minter: TokenMinter) -> None:
    # What an OpenID provider issues as an ID token: no typ, the client as the
    # audience, and a nonce. The first failing check is the type.
    token = minter.rsa(header={"typ": None}, aud="federation-test", nonce="n-0S6_WzA2Mj", client_id=None)

    assert "not an access token" in rejection_reason(validator, token)


# --- errors and logging ---------------------------------------------------------


def test_reason_and_logs_never_contain_token(
    validator: AccessTokenValidator, minter: TokenMinter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_federation")
    rejected = [
        minter.rsa(exp=NOW - 3600),
        minter.rsa(aud="urn:other:api"),
        minter.rsa(header={"kid": "unknown"}),
        minter.rsa(header={"alg": "HS256"}),
        minter.rsa()[:-5] + "AAAAA",
    ]
    for token in rejected:
        with pytest.raises(InvalidTokenError) as caught:
            validator.validate(token)
        for part in segments(token):
            assert part not in caught.value.reason
            assert part not in str(caught.value)
            assert part not in caplog.text


def test_jwks_unreachable_without_cached_keys_raises_unavailable(
    minter: TokenMinter, http_server: LocalHTTPServer, loopback_session: requests.Session
) -> None:
    # A 503 is an outage, reported as IdentityProviderUnavailable so that the caller can respond with 503 too.
    http_server.serve_json("/jwks", {"error": "maintenance"}, status=503)
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)
    validator = AccessTokenValidator(minter.issuer, AUDIENCE, jwks=cache, clock=lambda: NOW)

    with pytest.raises(IdentityProviderUnavailable):
        validator.validate(minter.rsa())


# --- constructor ----------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithms",
    [["none"], ["None"], ["RS256", "NONE"], ["HS256"], ["RS256", "HS384"], ["hs512"]],
)
def test_constructor_rejects_symmetric_and_none(jwks_cache: JWKSCache, algorithms: list[str]) -> None:
    with pytest.raises(OIDCConfigurationError, match="not asymmetric"):
        AccessTokenValidator("https://issuer.invalid", AUDIENCE, jwks=jwks_cache, algorithms=algorithms)


@pytest.mark.parametrize("algorithms", [["RS1"], ["rs256"], ["A256GCM"]])
def test_constructor_rejects_unknown_algorithms(jwks_cache: JWKSCache, algorithms: list[str]) -> None:
    with pytest.raises(OIDCConfigurationError, match="not supported"):
        AccessTokenValidator("https://issuer.invalid", AUDIENCE, jwks=jwks_cache, algorithms=algorithms)


def test_constructor_rejects_string_and_empty_list(jwks_cache: JWKSCache) -> None:
    with pytest.raises(OIDCConfigurationError, match="collection"):
        AccessTokenValidator("https://issuer.invalid", AUDIENCE, jwks=jwks_cache, algorithms="RS256")
    with pytest.raises(OIDCConfigurationError, match="empty"):
        AccessTokenValidator("https://issuer.invalid", AUDIENCE, jwks=jwks_cache, algorithms=[])


def test_constructor_rejects_empty_issuer_and_audience(jwks_cache: JWKSCache) -> None:
    with pytest.raises(OIDCConfigurationError, match="issuer"):
        AccessTokenValidator("", AUDIENCE, jwks=jwks_cache)
    with pytest.raises(OIDCConfigurationError, match="audience"):
        AccessTokenValidator("https://issuer.invalid", "", jwks=jwks_cache)


def test_default_algorithms_are_asymmetric(jwks_cache: JWKSCache) -> None:
    validator = AccessTokenValidator("https://issuer.invalid", AUDIENCE, jwks=jwks_cache)

    assert validator.algorithms == frozenset({"RS256", "PS256", "ES256", "EdDSA"})
