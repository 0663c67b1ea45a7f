"""Fixtures for the OIDC tests: keys, a local JWKS server, a token minter and the local IdP."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from flask_federation.oidc.jwks import JWKSCache
from flask_federation.oidc.tokens import AccessTokenValidator

from .idp import IdPSetupError, LocalIdP, ensure_node_modules

AUDIENCE = "urn:federation:provider"

# A fixed wall-clock time for token timestamps: 2027-01-15T08:00:00Z.
NOW = 1_800_000_000


class ManualClock:
    """A clock that moves only when a test calls ``advance``."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Route:
    """A canned response of ``LocalHTTPServer`` for one path."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class LocalHTTPServer:
    """An HTTP server on 127.0.0.1 that serves canned routes and counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.hits[path] += 1
                    route = server.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                if route.delay_seconds:
                    time.sleep(route.delay_seconds)
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    # Clients under test hang up early on purpose: after a
                    # timeout, or once a body exceeds their size limit.
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.routes.clear()
            self.hits.clear()

    def serve_json(self, path: str, document: Any, status: int = 200) -> None:
        self.routes[path] = Route(status=status, body=json.dumps(document).encode())

    def serve_keys(self, keys: Iterable[Key], path: str = "/jwks") -> None:
        """Serve the public parts of ``keys`` as a JWKS."""
        self.serve_json(path, {"keys": [key.as_dict(private=False) for key in keys]})

    def hit_count(self, path: str) -> int:
        with self._lock:
            return self.hits[path]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_compact(header: dict[str, Any] | str, payload: dict[str, Any] | bytes, key: Key, alg: str) -> str:
    """Build a compact JWS with joserfc's signing primitive but without its header checks.

    Tests need tokens that a correct issuer would never produce (``crit``,
    ``jku``, repeated members), which ``joserfc.jws.serialize_compact`` refuses
    to create. A string ``header`` is used verbatim as the header JSON.
    """
    header_json = header if isinstance(header, str) else json.dumps(header)
    payload_bytes = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64url(header_json.encode())}.{b64url(payload_bytes)}"
    signature = JWSRegistry.algorithms[alg].sign(signing_input.encode("ascii"), key)
    return f"{signing_input}.{b64url(signature)}"


class TokenMinter:
    """Mint access tokens for the issuer and audience that the ``validator`` fixture trusts."""

    def __init__(self, issuer: str, rsa_key: RSAKey, ec_key: ECKey) -> None:
        self.issuer = issuer
        self.rsa_key = rsa_key
        self.ec_key = ec_key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """Return valid claims with ``overrides`` applied; an override of ``None`` drops the claim."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "federation-test",
            "client_id": "federation-test",
            "scope": "tenants:read",
            "provider_id": "prv_alice",
            "iat": NOW,
            "exp": NOW + 600,
            "jti": "token-1",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def header(self, key: Key, alg: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return a valid header; an override of ``None`` drops the member."""
        header: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
        header.update(overrides or {})
        return {name: value for name, value in header.items() if value is not None}

    def rsa(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """Mint an RS256 token; ``header`` entries override the default header."""
        return sign_compact(
            self.header(self.rsa_key, "RS256", header), self.claims(**claims), self.rsa_key, "RS256"
        )

    def ec(self, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """Mint an ES256 token; ``header`` entries override the default header."""
        return sign_compact(
            self.header(self.ec_key, "ES256", header), self.claims(**claims), self.ec_key, "ES256"
        )


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-test-1", "use": "sig"}, private=True)


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-test-1", "use": "sig"}, private=True)


@pytest.fixture(scope="session")
def ed_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": "ed-test-1", "use": "sig"}, private=True)


@pytest.fixture(scope="session")
def shared_http_server() -> Iterator[LocalHTTPServer]:
    server = LocalHTTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http_server(shared_http_server: LocalHTTPServer) -> LocalHTTPServer:
    """The session's local HTTP server with no routes and zeroed hit counts."""
    shared_http_server.reset()
    return shared_http_server


@pytest.fixture
def jwks_server(http_server: LocalHTTPServer, rsa_key: RSAKey, ec_key: ECKey) -> LocalHTTPServer:
    """The local HTTP server, publishing the RSA and EC test keys at ``/jwks``."""
    http_server.serve_keys([rsa_key, ec_key])
    return http_server


@pytest.fixture
def loopback_session() -> Iterator[requests.Session]:
    session = requests.Session()
    # The tests talk to 127.0.0.1 only, so proxy settings from the environment must not apply.
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def clock() -> ManualClock:
    """The monotonic clock of the JWKS cache."""
    return ManualClock(10_000.0)


@pytest.fixture
def jwks_cache(jwks_server: LocalHTTPServer, loopback_session: requests.Session, clock: ManualClock) -> JWKSCache:
    return JWKSCache(jwks_server.url("/jwks"), session=loopback_session, clock=clock, timeout_seconds=2.0)


@pytest.fixture
def minter(jwks_server: LocalHTTPServer, rsa_key: RSAKey, ec_key: ECKey) -> TokenMinter:
    return TokenMinter(jwks_server.origin, rsa_key, ec_key)


@pytest.fixture
def validator(minter: TokenMinter, jwks_cache: JWKSCache) -> AccessTokenValidator:
    return AccessTokenValidator(minter.issuer, AUDIENCE, jwks=jwks_cache, clock=lambda: NOW)


def _idp_unavailable(reason: str) -> None:
    # CI must run these tests, so a missing runtime there is a failure, not a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(f"The local OIDC provider cannot run: {reason}", pytrace=False)
    pytest.skip(f"The local OIDC provider cannot run: {reason}")


def start_local_idp(**options: Any) -> LocalIdP:
    """Start a ``LocalIdP(**options)``, skipping the test (failing it under CI) when Node.js is missing."""
    try:
        ensure_node_modules()
    except IdPSetupError as exc:
        _idp_unavailable(str(exc))
    idp = LocalIdP(**options)
    try:
        idp.start()
    except BaseException:
        idp.close()
        raise
    return idp


@pytest.fixture(scope="session")
def idp() -> Iterator[LocalIdP]:
    """The local IdP shared by the whole session. Tests must not stop or restart it."""
    instance = start_local_idp()
    yield instance
    instance.close()


@pytest.fixture
def private_idp() -> Iterator[LocalIdP]:
    """A local IdP of the test's own, which the test may stop or restart."""
    instance = start_local_idp()
    yield instance
    instance.close()
