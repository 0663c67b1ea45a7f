"""with_rate_limit: headers, 429s, policies, cost, decorator order, keys and configuration."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask, jsonify
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_federation import ConfigurationError, Federation, with_provider_auth, with_rate_limit
from flask_federation.ratelimit.workers import detect_worker_processes
from flask_federation.state import get_state

from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"
DIAGNOSTICS = "/federation/developer/v1/diagnostics"
LIMIT_FIELD = re.compile(r'^"(?P<policy>[^"]+)";r=(?P<remaining>\d+);t=(?P<reset>\d+)$')


def remaining(response: Any) -> int:
    match = LIMIT_FIELD.match(response.headers["RateLimit"])
    assert match is not None, response.headers["RateLimit"]
    return int(match.group("remaining"))


@pytest.fixture
def world_app(make_app: Callable[..., Flask]) -> Iterator[Callable[..., tuple[Flask, World]]]:
    """Return a factory of (app, world) with the given config; an app context stays pushed for the world."""
    contexts: list[Any] = []

    def factory(**config: Any) -> tuple[Flask, World]:
        app = make_app(**config)
        context = app.app_context()
        context.push()
        contexts.append(context)
        return app, World()

    yield factory
    for context in reversed(contexts):
        context.pop()


def _bare_app(**config: Any) -> Flask:
    app = Flask("ratelimit_bare")
    app.config.update(SECRET_KEY="s", SQLALCHEMY_DATABASE_URI="sqlite://", **config)
    return app


# Headers and the 429 envelope


def test_success_carries_headers(client: Any, world: World) -> None:
    response = client.get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 200
    assert response.headers["RateLimit-Policy"] == '"provider";q=600;w=60'
    match = LIMIT_FIELD.match(response.headers["RateLimit"])
    assert match is not None
    assert match.group("policy") == "provider"
    assert int(match.group("remaining")) == 599
    assert 0 < int(match.group("reset")) <= 60


def test_over_limit_answers_429_envelope(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, world = world_app(FEDERATION_PROVIDER_RATE_LIMIT="2/minute")
    client = app.test_client()
    for expected in (1, 0):
        response = client.get(TENANTS, headers=bearer(world.key_a))
        assert response.status_code == 200
        assert remaining(response) == expected

    response = client.get(TENANTS, headers=bearer(world.key_a))
    assert response.status_code == 429
    assert response.headers["RateLimit-Policy"] == '"provider";q=2;w=60'
    assert remaining(response) == 0
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    error = response.json["error"]
    assert response.json["ok"] is False
    assert error["code"] == "rate_limited"
    assert error["details"] == {"policy": "provider", "limit": 2, "window": 60, "retry_after": retry_after}
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_error_responses_carry_headers(client: Any, world: World) -> None:
    response = client.get(f"{TENANTS}/ten_doesnotexist", headers=bearer(world.key_a))
    assert response.status_code == 404
    assert response.headers["RateLimit-Policy"] == '"provider";q=600;w=60'
    assert remaining(response) == 599


def test_host_429_handler_keeps_envelope(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app()
    app.register_error_handler(429, lambda error: ("host page", 429))

    @app.get("/host/limited")
    @with_rate_limit("1/minute")
    def limited() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert client.get("/host/limited").status_code == 200
    response = client.get("/host/limited")
    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"
    assert response.headers["RateLimit-Policy"] == '"limited";q=1;w=60'


def test_denial_sends_signal(world_app: Callable[..., tuple[Flask, World]]) -> None:
    from flask_federation import signals

    app, world = world_app(FEDERATION_DEVELOPER_RATE_LIMIT="1/minute")
    denied: list[str] = []

    def receiver(sender: Flask, error: Exception) -> None:
        denied.append(getattr(error, "error_code", ""))

    signals.request_denied.connect(receiver, app)
    client = app.test_client()
    client.get(DIAGNOSTICS, headers=bearer(world.key_dev))
    client.get(DIAGNOSTICS, headers=bearer(world.key_dev))
    signals.request_denied.disconnect(receiver, app)
    assert denied == ["rate_limited"]


# Decorator order, principals and addresses


def _add_order_routes(app: Flask, **limit: Any) -> None:
    @app.get("/host/auth-outside")
    @with_provider_auth("tenants:read")
    @with_rate_limit(**limit)
    def auth_outside() -> Any:
        return jsonify(route="outside")

    @app.get("/host/auth-inside")
    @with_rate_limit(**limit)
    @with_provider_auth("tenants:read")
    def auth_inside() -> Any:
        return jsonify(route="inside")


def test_decorator_order_shares_counter(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, world = world_app(FEDERATION_RATELIMIT_POLICIES={"orders": "3/minute"})
    _add_order_routes(app, policy="orders")
    client = app.test_client()
    sequence = ["/host/auth-outside", "/host/auth-inside", "/host/auth-outside"]
    for expected, path in zip((2, 1, 0), sequence, strict=True):
        response = client.get(path, headers=bearer(world.key_a))
        assert response.status_code == 200
        assert response.headers["RateLimit-Policy"] == '"orders";q=3;w=60'
        assert remaining(response) == expected

    assert client.get("/host/auth-inside", headers=bearer(world.key_a)).status_code == 429
    assert client.get("/host/auth-outside", headers=bearer(world.key_a)).status_code == 429
    other_provider = client.get("/host/auth-inside", headers=bearer(world.key_b))
    assert other_provider.status_code == 200
    assert remaining(other_provider) == 2


@pytest.mark.parametrize("path", ["/host/auth-outside", "/host/auth-inside"])
def test_rejected_credentials_not_counted(world_app: Callable[..., tuple[Flask, World]], path: str) -> None:
    app, world = world_app()
    _add_order_routes(app, limit="5/minute")
    client = app.test_client()
    unauthenticated = client.get(path)
    forbidden = client.get(path, headers=bearer(world.key_a_no_tenants))
    assert unauthenticated.status_code == 401
    assert forbidden.status_code == 403
    for response in (unauthenticated, forbidden):
        assert "RateLimit-Policy" not in response.headers
        assert "RateLimit" not in response.headers

    response = client.get(path, headers=bearer(world.key_a))
    assert response.status_code == 200
    assert remaining(response) == 4


def test_audience_policy_follows_principal(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, world = world_app(FEDERATION_PROVIDER_RATE_LIMIT="2/minute", FEDERATION_DEVELOPER_RATE_LIMIT="3/minute")
    client = app.test_client()
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 200
    read = client.get(f"{TENANTS}/{world.tenant_a.public_id}", headers=bearer(world.key_a))
    assert read.status_code == 200
    assert remaining(read) == 0
    assert client.get(TENANTS, headers=bearer(world.key_a)).status_code == 429
    assert client.get(TENANTS, headers=bearer(world.key_a_read_only)).status_code == 429
    diagnostics = client.get(DIAGNOSTICS, headers=bearer(world.key_dev))
    assert diagnostics.status_code == 200
    assert diagnostics.headers["RateLimit-Policy"] == '"developer";q=3;w=60'
    assert remaining(diagnostics) == 2


def test_unauthenticated_route_keyed_by_address(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app(FEDERATION_ANONYMOUS_RATE_LIMIT="2/minute")

    @app.get("/host/public")
    @with_rate_limit()
    def public() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    first = {"REMOTE_ADDR": "192.0.2.1"}
    for _ in range(2):
        response = client.get("/host/public", environ_base=first)
        assert response.status_code == 200
        assert response.headers["RateLimit-Policy"] == '"anonymous";q=2;w=60'

    assert client.get("/host/public", environ_base=first).status_code == 429
    other = client.get("/host/public", environ_base={"REMOTE_ADDR": "192.0.2.2"})
    assert other.status_code == 200
    assert remaining(other) == 1


def test_proxy_fix_sets_client_address(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app(FEDERATION_ANONYMOUS_RATE_LIMIT="1/minute")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]

    @app.get("/host/public")
    @with_rate_limit()
    def public() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    assert client.get("/host/public", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    assert client.get("/host/public", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
    assert client.get("/host/public", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 429


# Limits, policies and cost


def test_literal_limits_count_per_route(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app()

    @app.get("/host/one")
    @with_rate_limit("1/minute", name="one")
    def one() -> Any:
        return jsonify(ok=True)

    @app.get("/host/two")
    @with_rate_limit("1/minute")
    def two() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert client.get("/host/one").status_code == 200
    second = client.get("/host/two")
    assert second.status_code == 200
    assert second.headers["RateLimit-Policy"] == '"two";q=1;w=60'
    assert client.get("/host/one").status_code == 429


def test_cost_consumes_several_units(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, world = world_app()

    @app.post("/host/export")
    @with_rate_limit("10/minute", cost=4)
    @with_provider_auth("tenants:read")
    def export() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert remaining(client.post("/host/export", headers=bearer(world.key_a))) == 6
    assert remaining(client.post("/host/export", headers=bearer(world.key_a))) == 2
    rejected = client.post("/host/export", headers=bearer(world.key_a))
    assert rejected.status_code == 429
    assert remaining(rejected) == 2


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window", "moving-window"])
def test_every_strategy_limits(strategy: str) -> None:
    app = _bare_app(FEDERATION_RATELIMIT_STRATEGY=strategy)
    Federation(app)

    @app.get("/host/limited")
    @with_rate_limit("2/minute")
    def limited() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert [remaining(client.get("/host/limited")) for _ in range(2)] == [1, 0]
    rejected = client.get("/host/limited")
    assert rejected.status_code == 429
    assert 1 <= int(rejected.headers["Retry-After"]) <= 60


def test_stacked_limits_list_every_policy(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, world = world_app(FEDERATION_RATELIMIT_POLICIES={"burst": "5/second"})

    @app.get("/host/stacked")
    @with_rate_limit()
    @with_rate_limit(policy="burst")
    @with_provider_auth("tenants:read")
    def stacked() -> Any:
        return jsonify(ok=True)

    response = app.test_client().get("/host/stacked", headers=bearer(world.key_a))
    assert response.status_code == 200
    assert response.headers["RateLimit-Policy"] == '"provider";q=600;w=60, "burst";q=5;w=1'
    assert re.match(r'^"provider";r=599;t=\d+, "burst";r=4;t=\d+$', response.headers["RateLimit"])


def test_options_not_counted(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app()

    @app.route("/host/cors", methods=["GET", "OPTIONS"])
    @with_rate_limit("2/minute")
    def cors() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    for _ in range(3):
        preflight = client.options("/host/cors")
        assert preflight.status_code == 200
        assert "RateLimit" not in preflight.headers

    assert remaining(client.get("/host/cors")) == 1
    assert remaining(client.get("/host/cors")) == 0
    assert client.get("/host/cors").status_code == 429


def test_async_view_is_limited(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app()

    @app.get("/host/async")
    @with_rate_limit("1/minute")
    async def async_view() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert client.get("/host/async").status_code == 200
    assert client.get("/host/async").status_code == 429


def test_diagnostics_reports_standing(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, world = world_app(FEDERATION_DEVELOPER_RATE_LIMIT="10/minute")
    client = app.test_client()
    first = client.get(DIAGNOSTICS, headers=bearer(world.key_dev)).json["data"]["rate_limit"]
    second = client.get(DIAGNOSTICS, headers=bearer(world.key_dev)).json["data"]["rate_limit"]
    assert first["policy"] == "developer"
    assert first["limit"] == 10
    assert first["remaining"] == 9
    assert second["remaining"] == 8
    assert 0 < second["reset"] <= 60


# Configuration errors


def test_literal_cost_above_limit_rejected_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match=r"export.*costs 5.*'3/minute'"):

        @with_rate_limit("3/minute", cost=5)
        def export() -> Any:
            return None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"limit": "many per minute"}, "rate limit such as"),
        ({"limit": "1/second;10/minute"}, "one limit"),
        ({"limit": "0/minute"}, "at least one request"),
        ({"limit": "5/minute", "policy": "writes"}, "not both"),
        ({"policy": "bad name"}, "invalid policy name"),
        ({"cost": 0}, "cost must be a positive integer"),
        ({"policy": "writes", "name": "other"}, "name only applies"),
    ],
)
def test_invalid_decorator_arguments_rejected(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):

        @with_rate_limit(**arguments)
        def view() -> Any:
            return None


def test_policy_cost_above_limit_rejected_at_init() -> None:
    app = _bare_app(FEDERATION_RATELIMIT_POLICIES={"tiny": "2/minute"})

    @app.post("/host/bulk")
    @with_rate_limit(policy="tiny", cost=3)
    def bulk() -> Any:
        return jsonify(ok=True)

    with pytest.raises(ConfigurationError, match=r"Route 'bulk'.*costs 3.*'tiny'"):
        Federation(app)


def test_audience_cost_checked_at_init() -> None:
    app = _bare_app(FEDERATION_PROVIDER_RATE_LIMIT="2/minute")

    @app.post("/host/bulk")
    @with_rate_limit(cost=3)
    @with_provider_auth("tenants:write")
    def bulk() -> Any:
        return jsonify(ok=True)

    with pytest.raises(ConfigurationError, match=r"costs 3.*'provider'"):
        Federation(app)


def test_unknown_policy_rejected_at_init() -> None:
    app = _bare_app()

    @app.post("/host/bulk")
    @with_rate_limit(policy="writes")
    def bulk() -> Any:
        return jsonify(ok=True)

    with pytest.raises(ConfigurationError, match=r"'writes' is not defined.*FEDERATION_RATELIMIT_POLICIES"):
        Federation(app)


def test_policy_checked_on_first_use(world_app: Callable[..., tuple[Flask, World]]) -> None:
    app, _ = world_app(FEDERATION_RATELIMIT_POLICIES={"tiny": "2/minute"})

    @app.post("/host/bulk")
    @with_rate_limit(policy="tiny", cost=3)
    def bulk() -> Any:
        return jsonify(ok=True)

    with pytest.raises(ConfigurationError, match="costs 3"):
        app.test_client().post("/host/bulk")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FEDERATION_PROVIDER_RATE_LIMIT", "lots"),
        ("FEDERATION_DEVELOPER_RATE_LIMIT", 600),
        ("FEDERATION_ANONYMOUS_RATE_LIMIT", "1/second;60/minute"),
        ("FEDERATION_RATELIMIT_POLICIES", {"writes": "5 per fortnight"}),
        ("FEDERATION_RATELIMIT_POLICIES", {"provider": "5/minute"}),
        ("FEDERATION_RATELIMIT_POLICIES", {"has space": "5/minute"}),
        ("FEDERATION_RATELIMIT_POLICIES", {"writes": {"limit": "5/minute", "burst": 2}}),
        ("FEDERATION_RATELIMIT_POLICIES", "{not json"),
        ("FEDERATION_RATELIMIT_STRATEGY", "leaky-bucket"),
        ("FEDERATION_RATELIMIT_STORAGE_URI", "localhost:6379"),
        ("FEDERATION_RATELIMIT_STORAGE_TIMEOUT", 0),
        ("FEDERATION_RATELIMIT_KEY_PREFIX", "with/slash"),
        ("FEDERATION_RATELIMIT_FAIL_CLOSED", "sometimes"),
    ],
)
def test_invalid_setting_names_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        Federation(_bare_app(**{key: value}))


def test_policies_accept_json_from_environment() -> None:
    app = _bare_app(FEDERATION_RATELIMIT_POLICIES='{"writes": "10/minute", "exports": {"limit": "5/hour", "fail_closed": "true"}}')
    Federation(app)
    policies = get_state(app).components["rate_limits"].policies
    assert policies["writes"].quota == 10
    assert policies["exports"].window_seconds == 3600
    assert policies["exports"].fail_closed is True


def test_unknown_storage_scheme_hides_uri() -> None:
    with pytest.raises(ConfigurationError, match="FEDERATION_RATELIMIT_STORAGE_URI") as raised:
        Federation(_bare_app(FEDERATION_RATELIMIT_STORAGE_URI="nosuch://:hunter2@127.0.0.1:1"))

    assert "hunter2" not in str(raised.value)


# The Limiter: the extension's own or the host's


def test_own_limiter_per_app() -> None:
    first, second = _bare_app(), _bare_app()
    federation = Federation()
    federation.init_app(first)
    federation.init_app(second)
    first_limiter = get_state(first).components["limiter"]
    assert isinstance(first_limiter, Limiter)
    assert first_limiter is not get_state(second).components["limiter"]


def test_host_limiter_storage_is_used(redis_rate_limits: dict[str, str]) -> None:
    app = _bare_app(FEDERATION_RATELIMIT_KEY_PREFIX=redis_rate_limits["FEDERATION_RATELIMIT_KEY_PREFIX"])
    limiter = Limiter(get_remote_address, storage_uri=redis_rate_limits["FEDERATION_RATELIMIT_STORAGE_URI"])
    limiter.init_app(app)
    Federation(app, limiter=limiter)
    assert get_state(app).components["limiter"] is limiter

    @app.get("/host/limited")
    @with_rate_limit("1/minute")
    def limited() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert client.get("/host/limited").status_code == 200
    assert client.get("/host/limited").status_code == 429
    store = redis.Redis.from_url(redis_rate_limits["FEDERATION_RATELIMIT_STORAGE_URI"])
    prefix = redis_rate_limits["FEDERATION_RATELIMIT_KEY_PREFIX"]
    assert list(store.scan_iter(match=f"*{prefix}*"))
    store.close()


def test_uninitialised_host_limiter_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"limiter.init_app\(app\) before"):
        Federation(_bare_app(), limiter=Limiter(get_remote_address))


def test_disabled_limiter_counts_nothing() -> None:
    app = _bare_app(RATELIMIT_ENABLED=False)
    Federation(app)

    @app.get("/host/limited")
    @with_rate_limit("1/minute")
    def limited() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    for _ in range(3):
        response = client.get("/host/limited")
        assert response.status_code == 200
        assert "RateLimit-Policy" not in response.headers


def test_host_default_limits_not_applied_twice() -> None:
    app = _bare_app(RATELIMIT_DEFAULT="1/minute")
    Federation(app)

    @app.get("/host/plain")
    def plain() -> Any:
        return jsonify(ok=True)

    client = app.test_client()
    assert [client.get("/host/plain").status_code for _ in range(3)] == [200, 200, 200]


# Process-local storage with several workers


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WEB_CONCURRENCY", "4"), ("GUNICORN_CMD_ARGS", "--bind 0:8000 --workers=3"), ("UWSGI_PROCESSES", "2")],
)
def test_memory_storage_with_workers_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="flask_federation.ratelimit"):
        Federation(_bare_app())

    warnings = [record for record in caplog.records if "memory://" in record.getMessage()]
    assert len(warnings) == 1
    assert variable in warnings[0].getMessage()


def test_memory_storage_single_worker_quiet(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for variable in ("WEB_CONCURRENCY", "GUNICORN_CMD_ARGS", "UWSGI_PROCESSES", "UWSGI_WORKERS", "SERVER_SOFTWARE"):
        monkeypatch.delenv(variable, raising=False)

    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    with caplog.at_level(logging.WARNING, logger="flask_federation.ratelimit"):
        Federation(_bare_app())

    assert not [record for record in caplog.records if "memory://" in record.getMessage()]


@pytest.mark.parametrize(
    ("environ", "argv", "expected"),
    [
        ({}, ["gunicorn", "-w", "4"], None),
        ({"SERVER_SOFTWARE": "gunicorn/23.0.0"}, ["gunicorn", "-w", "4", "app:app"], (4, "the gunicorn command line")),
        ({"SERVER_SOFTWARE": "gunicorn/23.0.0"}, ["gunicorn", "-w3", "app:app"], (3, "the gunicorn command line")),
        ({"SERVER_SOFTWARE": "gunicorn/23.0.0"}, ["gunicorn", "--workers", "5"], (5, "the gunicorn command line")),
        ({"GUNICORN_CMD_ARGS": "-w 2", "WEB_CONCURRENCY": "6"}, [], (6, "WEB_CONCURRENCY")),
        ({"UWSGI_WORKERS": "8"}, [], (8, "UWSGI_WORKERS")),
        ({"WEB_CONCURRENCY": "many"}, [], None),
        ({"GUNICORN_CMD_ARGS": "--workers"}, [], None),
    ],
)
def test_worker_detection(environ: dict[str, str], argv: list[str], expected: tuple[int, str] | None) -> None:
    assert detect_worker_processes(environ, argv) == expected
