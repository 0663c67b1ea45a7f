"""The smoke checks: what each one sends to a deployment and what it expects back."""

from __future__ import annotations

import dataclasses
import functools
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

from .client import CheckFailed, CheckSkipped, SmokeClient, error_envelope, json_body, origin, success_data

Mode = Literal["read-only", "write"]
Status = Literal["passed", "failed", "skipped"]

TENANTS = "/provider/v1/tenants"
RATE_LIMIT_HEADERS = ("RateLimit-Policy", "RateLimit")
_PATH_PARAMETER = re.compile(r"\{([^{}]+)\}")
# Authentication runs before any lookup, so a 401 check needs no real id in the path.
_PLACEHOLDER = "smoke-placeholder"


@dataclasses.dataclass(frozen=True)
class SmokeConfig:
    """The deployment to check and the credentials to use; each optional key enables more checks."""

    base_url: str
    provider_key: str
    developer_key: str
    prefix: str = "/federation"
    mode: Mode = "read-only"
    timeout: float = 10.0
    provider_readonly_key: str | None = None
    developer_limited_key: str | None = None
    other_provider_key: str | None = None
    other_provider_tenant_id: str | None = None
    region: str = "eu-west-1"

    def __repr__(self) -> str:
        # Keys stay out of reprs, tracebacks and logs.
        return f"SmokeConfig(base_url={self.base_url!r}, prefix={self.prefix!r}, mode={self.mode!r})"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, with its wall-clock duration."""

    name: str
    status: Status
    duration_ms: float
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class ReadRoute:
    """A GET operation of the OpenAPI document, relative to the prefix, and the audience it serves."""

    path: str
    audience: str


class SmokeRun:
    """Runs every check once against one deployment and collects the results in order."""

    def __init__(self, config: SmokeConfig, client: SmokeClient | None = None) -> None:
        self.config = config
        self.client = client or SmokeClient(config.base_url, config.timeout)
        self.results: list[CheckResult] = []
        self._routes: list[ReadRoute] | None = None
        self._own_tenant_id: str | None = None

    def run(self) -> list[CheckResult]:
        try:
            self._check(f"OpenAPI document at {self.config.prefix}/openapi.json", self._load_routes)
            for route in self._routes or []:
                self._check(f"200 GET {route.path} as {route.audience}", functools.partial(self._read, route))
            for route in self._routes or []:
                self._check(f"401 GET {route.path} without credentials", functools.partial(self._unauthenticated, route))
            self._check("403 provider key lacking an entitlement", functools.partial(self._forbidden_reads, "provider"))
            self._check("403 developer key lacking an entitlement", functools.partial(self._forbidden_reads, "developer"))
            self._check("404 tenant of another provider", self._foreign_tenant)
            self._check("rate-limit headers on provider responses", functools.partial(self._rate_limit_headers, "provider"))
            self._check("rate-limit headers on developer responses", functools.partial(self._rate_limit_headers, "developer"))
            if self.config.mode == "write":
                self._check("201 idempotent tenant create replayed", self._idempotent_create)
                self._check("403 tenant create with the read-only key", self._forbidden_create)
        finally:
            self.client.close()
        return self.results

    def _check(self, name: str, check: Callable[[], str | None]) -> None:
        started = time.perf_counter()
        try:
            detail = check() or ""
            status: Status = "passed"
        except CheckFailed as failure:
            detail, status = str(failure), "failed"
        except CheckSkipped as skip:
            detail, status = str(skip), "skipped"
        elapsed = (time.perf_counter() - started) * 1000
        self.results.append(CheckResult(name, status, round(elapsed, 1), detail))

    def _url(self, path: str) -> str:
        return self.config.prefix + path

    def _key(self, audience: str) -> str:
        return self.config.provider_key if audience == "provider" else self.config.developer_key

    # Reading the routes to check from the deployment's own OpenAPI document.

    def _load_routes(self) -> str:
        response = self.client.request("GET", self._url("/openapi.json"))
        document = json_body(response)
        if response.status_code != 200 or not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
            raise CheckFailed(f"expected the OpenAPI document (status 200 with 'paths'), got status {response.status_code}.")

        self._routes = [
            ReadRoute(path, path.split("/")[1])
            for path, operations in sorted(document["paths"].items())
            if "get" in operations and path.split("/")[1] in {"provider", "developer"}
        ]
        if not self._routes:
            raise CheckFailed("the OpenAPI document lists no provider or developer GET route.")
        return f"{len(self._routes)} read routes"

    def _routes_of(self, audience: str) -> Iterator[ReadRoute]:
        if self._routes is None:
            raise CheckSkipped("needs the OpenAPI document, which could not be read.")
        return (route for route in self._routes if route.audience == audience)

    def _fill(self, path: str) -> str:
        def value(match: re.Match[str]) -> str:
            if match.group(1) == "tenant_id":
                return self._own_tenant()
            raise CheckSkipped(f"no value is known for the path parameter {{{match.group(1)}}}.")

        return _PATH_PARAMETER.sub(value, path)

    def _own_tenant(self) -> str:
        if self._own_tenant_id is None:
            self._own_tenant_id = self._first_tenant(self.config.provider_key, "the provider of FEDERATION_SMOKE_PROVIDER_KEY")
        return self._own_tenant_id

    def _first_tenant(self, key: str, owner: str) -> str:
        response = self.client.request("GET", self._url(f"{TENANTS}?limit=1"), key=key)
        items = success_data(response).get("items") or []
        if not items:
            raise CheckSkipped(f"{owner} has no tenant to read; create one, or run once with --mode write.")
        return str(items[0]["id"])

    # The checks.

    def _read(self, route: ReadRoute) -> None:
        response = self.client.request("GET", self._url(self._fill(route.path)), key=self._key(route.audience))
        success_data(response)

    def _unauthenticated(self, route: ReadRoute) -> None:
        response = self.client.request("GET", self._url(_PATH_PARAMETER.sub(_PLACEHOLDER, route.path)))
        error_envelope(response, 401, "unauthorized")
        if not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
            raise CheckFailed("expected a 'WWW-Authenticate: Bearer ...' header on the 401.")

    def _forbidden_reads(self, audience: str) -> str:
        key = self.config.provider_readonly_key if audience == "provider" else self.config.developer_limited_key
        variable = "PROVIDER_READONLY_KEY" if audience == "provider" else "DEVELOPER_LIMITED_KEY"
        if key is None:
            raise CheckSkipped(f"set FEDERATION_SMOKE_{variable} to a {audience} key lacking an entitlement.")

        routes = list(self._routes_of(audience))
        forbidden: list[str] = []
        for route in routes:
            response = self.client.request("GET", self._url(self._fill(route.path)), key=key)
            if response.status_code == 403:
                error = error_envelope(response, 403, "forbidden")
                missing = (error.get("details") or {}).get("missing_entitlements")
                forbidden.append(f"{route.path} (missing {', '.join(missing)})" if missing else route.path)
            elif response.status_code != 200:
                raise CheckFailed(f"GET {route.path} returned {response.status_code}; expected 200 or 403 for this key.")
            else:
                success_data(response)

        if not forbidden:
            raise CheckFailed(
                f"no {audience} read route returned 403, so the key holds every entitlement these routes require: "
                f"{', '.join(route.path for route in routes)}. Use a key lacking one of them."
            )
        return "403 on " + "; ".join(forbidden)

    def _foreign_tenant(self) -> str:
        tenant_id = self.config.other_provider_tenant_id
        if tenant_id is None and self.config.other_provider_key is not None:
            tenant_id = self._first_tenant(self.config.other_provider_key, "the provider of FEDERATION_SMOKE_OTHER_PROVIDER_KEY")
        if tenant_id is None:
            raise CheckSkipped("set FEDERATION_SMOKE_OTHER_PROVIDER_TENANT_ID or FEDERATION_SMOKE_OTHER_PROVIDER_KEY.")

        response = self.client.request("GET", self._url(f"{TENANTS}/{tenant_id}"), key=self.config.provider_key)
        error_envelope(response, 404, "not_found")
        return f"tenant {tenant_id}"

    def _rate_limit_headers(self, audience: str) -> str:
        route = next((route for route in self._routes_of(audience) if "{" not in route.path), None)
        if route is None:
            raise CheckSkipped(f"the OpenAPI document has no {audience} GET route without path parameters.")

        response = self.client.request("GET", self._url(route.path), key=self._key(audience))
        success_data(response)
        missing = [name for name in RATE_LIMIT_HEADERS if not response.headers.get(name)]
        if missing:
            raise CheckFailed(f"GET {route.path} returned no {' and '.join(missing)} headers.")
        return "; ".join(f"{name}: {response.headers[name]}" for name in RATE_LIMIT_HEADERS)

    def _new_tenant_body(self) -> dict[str, Any]:
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        slug = f"smoke-{stamp}-{secrets.token_hex(3)}"
        return {
            "name": f"Smoke test tenant {slug}",
            "slug": slug,
            "region": self.config.region,
            "metadata": {"created_by": "flask-federation smoke"},
        }

    def _idempotent_create(self) -> str:
        body = self._new_tenant_body()
        headers = {"Idempotency-Key": f"smoke-{uuid.uuid4()}"}
        first = self.client.request("POST", self._url(TENANTS), key=self.config.provider_key, headers=headers, body=body)
        created = success_data(first, 201)
        if created.get("slug") != body["slug"]:
            raise CheckFailed(f"created a tenant with slug {created.get('slug')!r}, expected {body['slug']!r}.")
        location = first.headers.get("Location")
        if not location:
            raise CheckFailed("the 201 has no Location header.")

        replay = self.client.request("POST", self._url(TENANTS), key=self.config.provider_key, headers=headers, body=body)
        if replay.status_code != first.status_code:
            raise CheckFailed(f"the replay returned {replay.status_code}, the first request {first.status_code}.")
        if json_body(replay) != json_body(first):
            raise CheckFailed("the replay's body differs from the first response's body.")
        if replay.headers.get("Idempotent-Replayed") != "true":
            raise CheckFailed(f"expected 'Idempotent-Replayed: true' on the replay, got {replay.headers.get('Idempotent-Replayed')!r}.")

        self._check_location(location, str(created.get("id")))
        return f"created tenant {created.get('id')} ({body['slug']})"

    def _check_location(self, location: str, tenant_id: str) -> None:
        if location.startswith(("http://", "https://")):
            if origin(location) != origin(self.config.base_url):
                raise CheckFailed(f"the Location header points to another host: {location}.")
            path = location[len(self.config.base_url.rstrip("/")) :]
        else:
            path = location
        read = success_data(self.client.request("GET", path, key=self.config.provider_key))
        if read.get("id") != tenant_id:
            raise CheckFailed(f"GET {location} returned tenant {read.get('id')!r}, expected {tenant_id!r}.")

    def _forbidden_create(self) -> str:
        key = self.config.provider_readonly_key
        if key is None:
            raise CheckSkipped("set FEDERATION_SMOKE_PROVIDER_READONLY_KEY to a provider key lacking tenants:write.")

        body = self._new_tenant_body()
        headers = {"Idempotency-Key": f"smoke-{uuid.uuid4()}"}
        response = self.client.request("POST", self._url(TENANTS), key=key, headers=headers, body=body)
        if response.status_code == 201:
            raise CheckFailed(f"the read-only key created tenant {body['slug']}: it holds tenants:write.")
        error_envelope(response, 403, "forbidden")
        return ""


def run_smoke(config: SmokeConfig) -> list[CheckResult]:
    """Run every check against ``config.base_url`` and return the results in order."""
    return SmokeRun(config).run()
