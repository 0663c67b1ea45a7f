"""Benchmark credential verification per request: API keys, and JWT access tokens with a warm JWKS cache.

A local HTTP server on 127.0.0.1 plays the OpenID provider: it serves the
discovery document and the JWKS (RSA 2048, P-256 and Ed25519 keys) and counts
the requests it gets. Tokens are minted with joserfc.

Two measurements:

- ``AccessTokenValidator.validate`` alone, per signing algorithm, on a
  ``JWKSCache`` warmed by one fetch.
- ``authenticate(Audience.PROVIDER)``, the function every auth guard calls, inside a
  request context: for an API key (parse, SHA-256, one SQL lookup of the key and its
  provider) and for a bearer token (validation, then one SQL lookup of the provider).
  The cost of pushing the request context alone is measured too and subtracted.

Afterwards it prints how many times the JWKS and the discovery document were
fetched during the timed calls: zero is the expected steady state.

Usage:
    createdb -h 127.0.0.1 -U postgres bench_tokens
    python -m benchmarks.tokens --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_tokens
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import json
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from flask_federation import Federation
from flask_federation.auth.authenticate import authenticate
from flask_federation.entitlements import Audience
from flask_federation.models import Provider
from flask_federation.oidc.jwks import JWKSCache
from flask_federation.oidc.tokens import AccessTokenValidator
from flask_federation.state import get_state

from .seed import Seed, seed_database
from .support import load_average, versions

AUDIENCE = "urn:federation:provider"


class LocalIdentityProvider:
    """Serves a discovery document and a JWKS on a free loopback port and counts requests per path."""

    def __init__(self, keys: list[Key]) -> None:
        self.hits: collections.Counter[str] = collections.Counter()
        identity_provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                identity_provider.hits[self.path] += 1
                documents = identity_provider.documents()
                if self.path not in documents:
                    self.send_error(404)
                    return

                body = json.dumps(documents[self.path]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._keys = keys
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_port}"

    def documents(self) -> dict[str, Any]:
        return {
            "/.well-known/openid-configuration": {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/jwks",
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
            },
            "/jwks": {"keys": [key.as_dict(private=False) for key in self._keys]},
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalIdentityProvider]:
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=10)


def mint(key: Key, algorithm: str, issuer: str, provider_id: str) -> str:
    """Return a signed RFC 9068 access token for the benchmark's provider, valid for an hour."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "client-benchmark",
        "provider_id": provider_id,
        "scope": "tenants:read",
        "iat": now,
        "exp": now + 3600,
        "jti": f"bench-{algorithm}",
    }
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates the name EdDSA; identity providers still sign with it.
        warnings.simplefilter("ignore")
        return jwt.encode({"alg": algorithm, "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=[algorithm])


def time_calls(call: Callable[[], object], count: int) -> tuple[float, float]:
    """Return the median and the 99th percentile of ``count`` calls, in microseconds, after 100 warm-up calls."""
    for _ in range(100):
        call()

    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1_000_000)

    quantiles = statistics.quantiles(samples, n=100)
    return quantiles[49], quantiles[98]


def build_app(database_url: str, issuer: str) -> Flask:
    app = Flask("token_benchmark")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        FEDERATION_ENABLED=True,
        FEDERATION_OIDC_ENABLED=True,
        FEDERATION_OIDC_ISSUER=issuer,
        FEDERATION_OIDC_PROVIDER_AUDIENCE=AUDIENCE,
        FEDERATION_OIDC_DEVELOPER_AUDIENCE="urn:federation:developer",
        FEDERATION_OIDC_REQUIRE_HTTPS=False,
    )
    Federation(app)
    return app


def measure_validator(identity_provider: LocalIdentityProvider, keys: dict[str, Key], provider_id: str, count: int) -> None:
    cache = JWKSCache(f"{identity_provider.issuer}/jwks")
    validator = AccessTokenValidator(identity_provider.issuer, AUDIENCE, jwks=cache, algorithms=list(keys))
    print("| algorithm | validate p50 (µs) | validate p99 (µs) |")
    print("| --- | ---: | ---: |")
    tokens = {algorithm: mint(key, algorithm, identity_provider.issuer, provider_id) for algorithm, key in keys.items()}
    validator.validate(tokens["RS256"])
    fetches_before = cache.fetch_count
    for algorithm, token in tokens.items():
        p50, p99 = time_calls(functools.partial(validator.validate, token), count)
        print(f"| {algorithm} | {p50:.0f} | {p99:.0f} |")

    print(f"\nJWKSCache.fetch_count during the timed validations: {cache.fetch_count - fetches_before} (1 before them)")
    cache.close()


def measure_authenticate(app: Flask, seed: Seed, token: str, identity_provider: LocalIdentityProvider, count: int) -> None:
    def in_context(authorization: str, work: Callable[[], object]) -> Callable[[], object]:
        def call() -> object:
            with app.test_request_context(headers={"Authorization": authorization}):
                return work()

        return call

    rows = {
        "request context only": in_context(f"Bearer {seed.api_key}", lambda: None),
        "API key": in_context(f"Bearer {seed.api_key}", lambda: authenticate(Audience.PROVIDER)),
        "JWT bearer (RS256)": in_context(f"Bearer {token}", lambda: authenticate(Audience.PROVIDER)),
    }
    rows["JWT bearer (RS256)"]()  # Discovery and the first JWKS fetch happen here, before timing.
    with app.app_context():
        jwks = get_state().components["oidc"].validator(Audience.PROVIDER).jwks

    hits_before = sum(identity_provider.hits.values())
    fetches_before = jwks.fetch_count
    # Each call pushes its own app context, as a request does, so each ends its session and transaction.
    results = {name: time_calls(call, count) for name, call in rows.items()}
    fetches = jwks.fetch_count - fetches_before

    base_p50 = results["request context only"][0]
    print("| credential | p50 (µs) | p99 (µs) | p50 minus context (µs) |")
    print("| --- | ---: | ---: | ---: |")
    for name, (p50, p99) in results.items():
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {p50 - base_p50:.0f} |")

    print(
        f"\nDuring the timed authenticate() calls: JWKSCache.fetch_count +{fetches}, "
        f"HTTP requests to the identity provider +{sum(identity_provider.hits.values()) - hits_before}; "
        f"before them: {dict(identity_provider.hits)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", required=True, help="PostgreSQL URL of a database whose federation tables the benchmark may drop."
    )
    parser.add_argument("--count", type=int, default=3_000, help="Timed calls per row.")
    arguments = parser.parse_args()

    print(versions())
    print(f"Start: {load_average()}")
    keys: dict[str, Key] = {
        "RS256": RSAKey.generate_key(2048, parameters={"kid": "bench-rsa"}),
        "ES256": ECKey.generate_key("P-256", parameters={"kid": "bench-ec"}),
        "EdDSA": OKPKey.generate_key("Ed25519", parameters={"kid": "bench-ed"}),
    }
    seed = seed_database(arguments.database_url)
    with LocalIdentityProvider(list(keys.values())).running() as identity_provider:
        app = build_app(arguments.database_url, identity_provider.issuer)
        with app.app_context():
            provider = get_state().session.get(Provider, seed.provider_pk)
            assert provider is not None
            provider_id = provider.public_id

        print("\nAccessTokenValidator.validate, warm JWKS cache:\n")
        measure_validator(identity_provider, keys, provider_id, arguments.count)
        print("\nauthenticate(Audience.PROVIDER) in a request context:\n")
        token = mint(keys["RS256"], "RS256", identity_provider.issuer, provider_id)
        measure_authenticate(app, seed, token, identity_provider, arguments.count)

    print(f"\nEnd: {load_average()}")


if __name__ == "__main__":
    main()
