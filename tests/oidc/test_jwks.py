"""JWKSCache and provider discovery against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, RSAKey

from flask_federation.oidc.discovery import ProviderMetadata, fetch_provider_metadata
from flask_federation.oidc.errors import IdentityProviderUnavailable, OIDCConfigurationError
from flask_federation.oidc.jwks import JWKSCache, UnknownKeyError

from .conftest import LocalHTTPServer, ManualClock, Route

JWKS_LOGGER = "flask_federation.oidc.jwks"


def unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def jwks_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == JWKS_LOGGER and record.levelno == logging.WARNING]


# --- caching and refresh --------------------------------------------------------


def test_keys_fetched_once_within_ttl(jwks_cache: JWKSCache, jwks_server: LocalHTTPServer, clock: ManualClock) -> None:
    for _ in range(50):
        jwks_cache.get_key("rsa-test-1")
        jwks_cache.get_key("ec-test-1")
        clock.advance(1)

    assert jwks_cache.fetch_count == 1
    assert jwks_server.hit_count("/jwks") == 1


def test_returned_keys_are_public(jwks_cache: JWKSCache) -> None:
    assert not jwks_cache.get_key("rsa-test-1").is_private
    assert not jwks_cache.get_key("ec-test-1").is_private


def test_ttl_expiry_refetches(jwks_cache: JWKSCache, clock: ManualClock) -> None:
    jwks_cache.get_key("rsa-test-1")
    clock.advance(jwks_cache.ttl_seconds - 1)
    jwks_cache.get_key("rsa-test-1")
    assert jwks_cache.fetch_count == 1

    clock.advance(1)
    jwks_cache.get_key("rsa-test-1")
    assert jwks_cache.fetch_count == 2


def test_unknown_kid_flood_refetches_once_per_cooldown(jwks_cache: JWKSCache, clock: ManualClock) -> None:
    jwks_cache.get_key("rsa-test-1")
    clock.advance(jwks_cache.refetch_cooldown_seconds)

    for _ in range(200):
        with pytest.raises(UnknownKeyError):
            jwks_cache.get_key(uuid.uuid4().hex)
    assert jwks_cache.fetch_count == 2

    clock.advance(jwks_cache.refetch_cooldown_seconds)
    for _ in range(200):
        with pytest.raises(UnknownKeyError):
            jwks_cache.get_key(uuid.uuid4().hex)
    assert jwks_cache.fetch_count == 3


def test_rotated_key_picked_up_without_restart(
    jwks_cache: JWKSCache, jwks_server: LocalHTTPServer, clock: ManualClock, rsa_key: RSAKey
) -> None:
    jwks_cache.get_key("rsa-test-1")
    new_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-test-2", "use": "sig"}, private=True)
    jwks_server.serve_keys([rsa_key, new_key])
    clock.advance(jwks_cache.refetch_cooldown_seconds)

    assert jwks_cache.get_key("rsa-test-2").kid == "rsa-test-2"
    assert jwks_cache.fetch_count == 2


def test_key_removed_by_issuer_is_dropped(
    jwks_cache: JWKSCache, jwks_server: LocalHTTPServer, clock: ManualClock, ec_key: ECKey
) -> None:
    jwks_cache.get_key("rsa-test-1")
    jwks_server.serve_keys([ec_key])
    clock.advance(jwks_cache.ttl_seconds)
    jwks_cache.get_key("ec-test-1")

    with pytest.raises(UnknownKeyError):
        jwks_cache.get_key("rsa-test-1")
    assert jwks_cache.kids() == frozenset({"ec-test-1"})


def test_unknown_kid_after_ttl_refresh_waits_for_cooldown(jwks_cache: JWKSCache, clock: ManualClock) -> None:
    # A TTL refresh counts as a fetch attempt, so an unknown kid right after it does not fetch again.
    jwks_cache.get_key("rsa-test-1")
    clock.advance(jwks_cache.ttl_seconds)

    with pytest.raises(UnknownKeyError):
        jwks_cache.get_key("unknown")
    assert jwks_cache.fetch_count == 2


# --- which keys are kept --------------------------------------------------------


def test_only_public_signing_keys_with_kid_are_kept(
    http_server: LocalHTTPServer, loopback_session: requests.Session, rsa_key: RSAKey, ec_key: ECKey
) -> None:
    encryption_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-enc", "use": "enc"}, private=True)
    odd_use_key = ECKey.generate_key("P-256", parameters={"kid": "ec-odd"}, private=True)
    hmac_key = OctKey.generate_key(256, parameters={"kid": "oct-1"})
    with pytest.warns(SecurityWarning):
        weak_key = RSAKey.generate_key(1024, parameters={"kid": "rsa-1024"}, private=True)
    kidless_key = RSAKey.generate_key(2048, private=True, auto_kid=False)
    document = {
        "keys": [
            rsa_key.as_dict(private=False),
            # A private key published by mistake: only its public part may be kept.
            ec_key.as_dict(private=True),
            encryption_key.as_dict(private=False),
            {**odd_use_key.as_dict(private=False), "use": "tls"},
            hmac_key.as_dict(private=True),
            weak_key.as_dict(private=False),
            kidless_key.as_dict(private=False),
            {"kty": "RSA", "kid": "rsa-broken", "n": "AAAA"},
            {"kty": "EC", "kid": "ec-broken", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
            "not an object",
        ]
    }
    http_server.serve_json("/jwks", document)
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)

    assert cache.get_key("rsa-test-1").kid == "rsa-test-1"
    assert cache.kids() == frozenset({"rsa-test-1", "ec-test-1"})
    assert not cache.get_key("ec-test-1").is_private


def test_duplicate_kid_keeps_first_entry(
    http_server: LocalHTTPServer, loopback_session: requests.Session, rsa_key: RSAKey
) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "rsa-test-1"}, private=True)
    http_server.serve_keys([rsa_key, impostor])
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)

    assert cache.get_key("rsa-test-1").as_dict() == rsa_key.as_dict(private=False)


def test_empty_key_set_accepted(http_server: LocalHTTPServer, loopback_session: requests.Session) -> None:
    http_server.serve_json("/jwks", {"keys": []})
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)

    with pytest.raises(UnknownKeyError):
        cache.get_key("rsa-test-1")
    assert cache.fetch_count == 1


# --- outages --------------------------------------------------------------------


def test_outage_serves_cached_keys_and_warns_once(
    jwks_cache: JWKSCache,
    jwks_server: LocalHTTPServer,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="flask_federation")
    jwks_cache.get_key("rsa-test-1")
    jwks_server.serve_json("/jwks", {"error": "unavailable"}, status=503)
    clock.advance(jwks_cache.ttl_seconds)

    # Three failed refetches, one per cooldown window, with requests in between.
    for _ in range(3):
        for _ in range(10):
            assert jwks_cache.get_key("rsa-test-1").kid == "rsa-test-1"
        clock.advance(jwks_cache.refetch_cooldown_seconds)

    assert jwks_cache.fetch_count == 4
    assert jwks_cache.fetch_failure_count == 3
    assert len(jwks_warnings(caplog)) == 1


def test_outage_recovery_then_new_outage_warns_again(
    jwks_cache: JWKSCache,
    jwks_server: LocalHTTPServer,
    clock: ManualClock,
    rsa_key: RSAKey,
    ec_key: ECKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flask_federation")
    jwks_cache.get_key("rsa-test-1")

    jwks_server.serve_json("/jwks", {}, status=500)
    clock.advance(jwks_cache.ttl_seconds)
    jwks_cache.get_key("rsa-test-1")

    jwks_server.serve_keys([rsa_key, ec_key])
    clock.advance(jwks_cache.refetch_cooldown_seconds)
    jwks_cache.get_key("rsa-test-1")
    assert any("reachable again" in record.getMessage() for record in caplog.records)

    jwks_server.serve_json("/jwks", {}, status=500)
    clock.advance(jwks_cache.ttl_seconds)
    jwks_cache.get_key("rsa-test-1")

    assert len(jwks_warnings(caplog)) == 2


def test_outage_on_unknown_kid_keeps_cached_keys(
    jwks_cache: JWKSCache, jwks_server: LocalHTTPServer, clock: ManualClock
) -> None:
    jwks_cache.get_key("rsa-test-1")
    jwks_server.serve_json("/jwks", {}, status=502)
    clock.advance(jwks_cache.refetch_cooldown_seconds)

    with pytest.raises(UnknownKeyError):
        jwks_cache.get_key("new-kid")
    assert jwks_cache.get_key("rsa-test-1").kid == "rsa-test-1"
    assert jwks_cache.fetch_failure_count == 1


def test_connection_refused_serves_cached_keys(
    rsa_key: RSAKey, loopback_session: requests.Session, clock: ManualClock
) -> None:
    server = LocalHTTPServer()
    server.start()
    server.serve_keys([rsa_key])
    cache = JWKSCache(server.url("/jwks"), session=loopback_session, clock=clock)
    cache.get_key("rsa-test-1")
    server.stop()
    clock.advance(cache.ttl_seconds)

    assert cache.get_key("rsa-test-1").kid == "rsa-test-1"
    assert cache.fetch_failure_count == 1


def test_cold_start_outage_raises_and_backs_off(
    http_server: LocalHTTPServer,
    loopback_session: requests.Session,
    clock: ManualClock,
    rsa_key: RSAKey,
) -> None:
    http_server.serve_json("/jwks", {}, status=503)
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session, clock=clock)

    with pytest.raises(IdentityProviderUnavailable, match="HTTP 503"):
        cache.get_key("rsa-test-1")
    # Within the cooldown the error repeats without another request.
    with pytest.raises(IdentityProviderUnavailable, match="HTTP 503"):
        cache.get_key("rsa-test-1")
    assert http_server.hit_count("/jwks") == 1

    http_server.serve_keys([rsa_key])
    clock.advance(cache.refetch_cooldown_seconds)

    assert cache.get_key("rsa-test-1").kid == "rsa-test-1"
    assert http_server.hit_count("/jwks") == 2


def test_cold_start_connection_refused_raises(loopback_session: requests.Session) -> None:
    cache = JWKSCache(f"http://127.0.0.1:{unused_loopback_port()}/jwks", session=loopback_session)

    with pytest.raises(IdentityProviderUnavailable, match="failed: ConnectionError"):
        cache.get_key("rsa-test-1")


def test_timeout_raises_unavailable(http_server: LocalHTTPServer, loopback_session: requests.Session) -> None:
    http_server.routes["/jwks"] = Route(body=b'{"keys": []}', delay_seconds=1.0)
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session, timeout_seconds=0.2)

    with pytest.raises(IdentityProviderUnavailable, match=r"timed out after 0\.2 s"):
        cache.get_key("rsa-test-1")


@pytest.mark.parametrize(
    ("route", "message"),
    [
        (Route(status=404), "returned HTTP 404, expected 200"),
        (Route(status=302, headers={"Location": "/elsewhere"}), "returned HTTP 302, expected 200"),
        (Route(body=b"<html>maintenance</html>"), "is not valid JSON"),
        (Route(body=b"[]"), "is not a JSON object"),
        (Route(body=b'{"keys": {}}'), "has no 'keys' array"),
        (Route(body=b" " * (1024 * 1024 + 1)), "larger than the 1048576-byte limit"),
    ],
    ids=["404", "redirect", "html", "array", "keys-object", "oversized"],
)
def test_invalid_jwks_raises_configuration_error(
    http_server: LocalHTTPServer, loopback_session: requests.Session, route: Route, message: str
) -> None:
    http_server.routes["/jwks"] = route
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)

    with pytest.raises(OIDCConfigurationError, match=message):
        cache.get_key("rsa-test-1")


def test_redirect_not_followed(http_server: LocalHTTPServer, loopback_session: requests.Session, rsa_key: RSAKey) -> None:
    http_server.routes["/jwks"] = Route(status=302, headers={"Location": "/other-jwks"})
    http_server.serve_keys([rsa_key], path="/other-jwks")
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)

    with pytest.raises(OIDCConfigurationError):
        cache.get_key("rsa-test-1")
    assert http_server.hit_count("/other-jwks") == 0


def test_read_error_raises_unavailable(rsa_key: RSAKey) -> None:
    class BrokenBodyResponse(requests.Response):
        def iter_content(self, chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[bytes]:
            raise requests.exceptions.ChunkedEncodingError("connection broken mid-body")

    class BrokenBodySession(requests.Session):
        """Fails every response while its body is read, which a real server cannot stage reliably."""

        def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
            response = BrokenBodyResponse()
            response.status_code = 200
            response.url = str(url)
            response.raw = io.BytesIO()
            return response

    cache = JWKSCache("http://127.0.0.1:9/jwks", session=BrokenBodySession())

    with pytest.raises(IdentityProviderUnavailable, match="Reading the JWKS"):
        cache.get_key("rsa-test-1")


# --- threads --------------------------------------------------------------------


def test_concurrent_cold_lookups_fetch_once(
    http_server: LocalHTTPServer, loopback_session: requests.Session, rsa_key: RSAKey
) -> None:
    body = json.dumps({"keys": [rsa_key.as_dict(private=False)]}).encode()
    http_server.routes["/jwks"] = Route(body=body, delay_seconds=0.2)
    cache = JWKSCache(http_server.url("/jwks"), session=loopback_session)
    results: list[str | None] = []
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def look_up() -> None:
        start.wait()
        try:
            results.append(cache.get_key("rsa-test-1").kid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=look_up) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert errors == []
    assert results == ["rsa-test-1"] * 16
    assert http_server.hit_count("/jwks") == 1


def test_concurrent_unknown_kids_fetch_at_most_once(
    jwks_cache: JWKSCache, jwks_server: LocalHTTPServer, clock: ManualClock
) -> None:
    jwks_cache.get_key("rsa-test-1")
    clock.advance(jwks_cache.refetch_cooldown_seconds)
    outcomes: list[str] = []
    start = threading.Barrier(16)

    def look_up(index: int) -> None:
        start.wait()
        for attempt in range(20):
            try:
                jwks_cache.get_key(f"random-{index}-{attempt}")
            except UnknownKeyError:
                outcomes.append("unknown")

    threads = [threading.Thread(target=look_up, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert outcomes == ["unknown"] * 320
    assert jwks_server.hit_count("/jwks") == 2


def test_stale_keys_serve_while_refresh_is_slow(
    jwks_cache: JWKSCache, jwks_server: LocalHTTPServer, clock: ManualClock, rsa_key: RSAKey
) -> None:
    jwks_cache.get_key("rsa-test-1")
    body = json.dumps({"keys": [rsa_key.as_dict(private=False)]}).encode()
    jwks_server.routes["/jwks"] = Route(body=body, delay_seconds=0.5)
    clock.advance(jwks_cache.ttl_seconds)
    refresher = threading.Thread(target=jwks_cache.get_key, args=("rsa-test-1",))
    refresher.start()
    while jwks_server.hit_count("/jwks") < 2:
        threading.Event().wait(0.01)

    # The refresh is in flight; this lookup must not queue behind it.
    waited = threading.Event()

    def look_up() -> None:
        jwks_cache.get_key("rsa-test-1")
        waited.set()

    lookup = threading.Thread(target=look_up)
    lookup.start()

    assert waited.wait(timeout=0.3)
    refresher.join(timeout=5)
    lookup.join(timeout=5)


# --- constructor ----------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [{"ttl_seconds": 0}, {"refetch_cooldown_seconds": -1}, {"timeout_seconds": 0}],
)
def test_cache_rejects_invalid_settings(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        JWKSCache("http://127.0.0.1:9/jwks", **arguments)  # type: ignore[arg-type]


# --- discovery ------------------------------------------------------------------


def discovery_document(issuer: str, **overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/jwks",
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "end_session_endpoint": f"{issuer}/session/end",
        "userinfo_endpoint": f"{issuer}/me",
    }
    document.update(overrides)
    return {name: value for name, value in document.items() if value is not None}


def test_discovery_returns_metadata(http_server: LocalHTTPServer, loopback_session: requests.Session) -> None:
    issuer = http_server.origin
    http_server.serve_json("/.well-known/openid-configuration", discovery_document(issuer))

    metadata = fetch_provider_metadata(issuer, timeout=2, session=loopback_session)

    assert metadata == ProviderMetadata(
        issuer=issuer,
        jwks_uri=f"{issuer}/jwks",
        authorization_endpoint=f"{issuer}/auth",
        token_endpoint=f"{issuer}/token",
        end_session_endpoint=f"{issuer}/session/end",
        userinfo_endpoint=f"{issuer}/me",
    )


def test_discovery_optional_endpoints_missing(http_server: LocalHTTPServer, loopback_session: requests.Session) -> None:
    issuer = http_server.origin
    document = discovery_document(issuer, end_session_endpoint=None, userinfo_endpoint=None)
    http_server.serve_json("/.well-known/openid-configuration", document)

    metadata = fetch_provider_metadata(issuer, timeout=2, session=loopback_session)

    assert metadata.end_session_endpoint is None
    assert metadata.userinfo_endpoint is None


def test_discovery_issuer_with_path_and_trailing_slash(
    http_server: LocalHTTPServer, loopback_session: requests.Session
) -> None:
    # Discovery 1.0 section 4: the terminating "/" is dropped before appending the well-known path.
    issuer = http_server.url("/realms/federation/")
    http_server.serve_json("/realms/federation/.well-known/openid-configuration", discovery_document(issuer))

    assert fetch_provider_metadata(issuer, timeout=2, session=loopback_session).issuer == issuer


@pytest.mark.parametrize(
    "published_issuer",
    ["{origin}/", "{origin}/other", "http://localhost:{port}", None],
    ids=["trailing-slash", "path", "other-host", "missing"],
)
def test_discovery_issuer_mismatch_raises(
    http_server: LocalHTTPServer, loopback_session: requests.Session, published_issuer: str | None
) -> None:
    issuer = http_server.origin
    port = issuer.rsplit(":", 1)[1]
    published = None if published_issuer is None else published_issuer.format(origin=issuer, port=port)
    document = discovery_document(issuer)
    document["issuer"] = published
    http_server.serve_json("/.well-known/openid-configuration", document)

    with pytest.raises(OIDCConfigurationError, match="must match exactly"):
        fetch_provider_metadata(issuer, timeout=2, session=loopback_session)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwks_uri": None}, "has no jwks_uri"),
        ({"token_endpoint": ""}, "has no token_endpoint"),
        ({"authorization_endpoint": 5}, "has no authorization_endpoint"),
        ({"jwks_uri": "file:///etc/passwd"}, "not an absolute http"),
        ({"end_session_endpoint": "/relative"}, "not an absolute http"),
    ],
    ids=["no-jwks-uri", "empty-token-endpoint", "non-string", "file-url", "relative"],
)
def test_discovery_invalid_endpoint_raises(
    http_server: LocalHTTPServer,
    loopback_session: requests.Session,
    overrides: dict[str, object],
    message: str,
) -> None:
    issuer = http_server.origin
    http_server.serve_json("/.well-known/openid-configuration", discovery_document(issuer, **overrides))

    with pytest.raises(OIDCConfigurationError, match=message):
        fetch_provider_metadata(issuer, timeout=2, session=loopback_session)


@pytest.mark.parametrize(
    ("route", "error"),
    [
        (Route(status=500), IdentityProviderUnavailable),
        (Route(status=429), IdentityProviderUnavailable),
        (Route(status=404), OIDCConfigurationError),
        (Route(body=b"not json"), OIDCConfigurationError),
    ],
    ids=["500", "429", "404", "bad-json"],
)
def test_discovery_http_failures(
    http_server: LocalHTTPServer,
    loopback_session: requests.Session,
    route: Route,
    error: type[Exception],
) -> None:
    http_server.routes["/.well-known/openid-configuration"] = route

    with pytest.raises(error):
        fetch_provider_metadata(http_server.origin, timeout=2, session=loopback_session)


def test_discovery_connection_refused_raises_unavailable(loopback_session: requests.Session) -> None:
    issuer = f"http://127.0.0.1:{unused_loopback_port()}"

    with pytest.raises(IdentityProviderUnavailable):
        fetch_provider_metadata(issuer, timeout=2, session=loopback_session)


@pytest.mark.parametrize("issuer", ["", "127.0.0.1:8080", "ftp://127.0.0.1/"])
def test_discovery_rejects_invalid_issuer(issuer: str) -> None:
    with pytest.raises(OIDCConfigurationError):
        fetch_provider_metadata(issuer, timeout=2)
