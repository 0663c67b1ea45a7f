"""The smoke runner against a real server on a loopback port, serving an app with seeded data."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, redirect
from sqlalchemy import func, select

from flask_federation import admin
from flask_federation.cli import federation_cli
from flask_federation.models import Tenant
from flask_federation.smoke import CheckResult, SmokeConfig, run_smoke, smoke_command
from flask_federation.state import get_state

from .live_server import serve

# Checks of the rate-limit headers and of the idempotent tenant create (write mode only).
RATE_LIMIT_CHECKS = ("rate-limit headers on provider responses", "rate-limit headers on developer responses")
WRITE_CHECKS = ("201 idempotent tenant create replayed", "403 tenant create with the read-only key")


@dataclasses.dataclass(frozen=True)
class SmokeTarget:
    """A served app and the credentials and ids the smoke runner needs against it."""

    app: Flask
    base_url: str
    key_all: str
    key_read_only: str
    key_no_tenants: str
    key_other: str
    key_dev: str
    key_dev_no_diagnostics: str
    own_tenant_id: str
    other_tenant_id: str

    def config(self, **overrides: Any) -> SmokeConfig:
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "provider_key": self.key_all,
            "developer_key": self.key_dev,
            "provider_readonly_key": self.key_no_tenants,
            "developer_limited_key": self.key_dev_no_diagnostics,
            "other_provider_key": self.key_other,
            "timeout": 5.0,
        }
        values.update(overrides)
        return SmokeConfig(**values)

    def environment(self) -> dict[str, str]:
        return {
            "FEDERATION_SMOKE_PROVIDER_KEY": self.key_all,
            "FEDERATION_SMOKE_PROVIDER_READONLY_KEY": self.key_no_tenants,
            "FEDERATION_SMOKE_OTHER_PROVIDER_KEY": self.key_other,
            "FEDERATION_SMOKE_DEVELOPER_KEY": self.key_dev,
            "FEDERATION_SMOKE_DEVELOPER_LIMITED_KEY": self.key_dev_no_diagnostics,
        }

    def tenant_count(self) -> int:
        with self.app.app_context():
            count = get_state().session.execute(select(func.count()).select_from(Tenant)).scalar_one()
            get_state().session.remove()
        return int(count)


def _add_test_routes(app: Flask) -> None:
    """Add host routes that redirect or stall, to exercise the runner's redirect and timeout rules."""

    @app.get("/moved/openapi.json")
    def moved() -> Any:
        return redirect("/federation/openapi.json", code=308)

    @app.get("/elsewhere/openapi.json")
    def elsewhere() -> Any:
        # Never requested: the runner must refuse to follow a redirect to another origin.
        return redirect("http://127.0.0.2:9/federation/openapi.json", code=302)

    limited_calls: list[int] = []

    @app.get("/limited/openapi.json")
    def limited() -> Any:
        limited_calls.append(1)
        if len(limited_calls) == 1:
            return {"ok": False}, 429, {"Retry-After": "1"}
        return redirect("/federation/openapi.json", code=307)

    @app.get("/limited-long/openapi.json")
    def limited_long() -> Any:
        return {"ok": False}, 429, {"Retry-After": "3600"}

    @app.get("/slow/openapi.json")
    def slow() -> Any:
        time.sleep(2)
        return {"paths": {}}


@pytest.fixture
def target(make_app: Callable[..., Flask]) -> Iterator[SmokeTarget]:
    app = make_app()
    _add_test_routes(app)
    with app.app_context():
        provider_a = admin.create_provider("Smoke A")
        provider_b = admin.create_provider("Smoke B")
        developer = admin.create_developer("Smoke D")
        own = admin.create_tenant(provider_a.public_id, name="A one", slug="a-one", region="eu-west-1")
        other = admin.create_tenant(provider_b.public_id, name="B one", slug="b-one", region="us-east-1")
        all_provider = ["tenants:read", "tenants:write", "audit:read"]
        served = dict(
            key_all=admin.issue_key(provider_a.public_id, all_provider).key,
            key_read_only=admin.issue_key(provider_a.public_id, ["tenants:read"]).key,
            key_no_tenants=admin.issue_key(provider_a.public_id, ["audit:read"]).key,
            key_other=admin.issue_key(provider_b.public_id, all_provider).key,
            key_dev=admin.issue_key(developer.public_id, ["diagnostics:read", "audit:read"]).key,
            key_dev_no_diagnostics=admin.issue_key(developer.public_id, ["audit:read"]).key,
            own_tenant_id=own.public_id,
            other_tenant_id=other.public_id,
        )
        get_state().session.remove()

    with serve(app) as base_url:
        yield SmokeTarget(app=app, base_url=base_url, **served)


def _by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


def _read_checks(results: list[CheckResult]) -> list[CheckResult]:
    return [result for result in results if result.name.startswith(("200 GET", "401 GET"))]


def test_read_only_run(target: SmokeTarget) -> None:
    before = target.tenant_count()
    results = _by_name(run_smoke(target.config()))

    assert results["OpenAPI document at /federation/openapi.json"].status == "passed"
    for name in (
        "200 GET /provider/v1/tenants as provider",
        "200 GET /provider/v1/tenants/{tenant_id} as provider",
        "200 GET /developer/v1/diagnostics as developer",
        "401 GET /provider/v1/tenants without credentials",
        "401 GET /provider/v1/tenants/{tenant_id} without credentials",
        "401 GET /developer/v1/diagnostics without credentials",
        "403 provider key lacking an entitlement",
        "403 developer key lacking an entitlement",
        "404 tenant of another provider",
    ):
        assert results[name].status == "passed", (name, results[name].detail)
    assert "missing tenants:read" in results["403 provider key lacking an entitlement"].detail
    assert target.other_tenant_id in results["404 tenant of another provider"].detail
    assert not any(name in results for name in WRITE_CHECKS)
    assert target.tenant_count() == before


def test_every_documented_read_route_checked(target: SmokeTarget) -> None:
    document = target.app.test_client().get("/federation/openapi.json").json
    documented = {path for path, operations in document["paths"].items() if "get" in operations}
    names = {result.name for result in run_smoke(target.config())}
    for path in documented:
        audience = path.split("/")[1]
        assert f"200 GET {path} as {audience}" in names
        assert f"401 GET {path} without credentials" in names


def test_rate_limit_headers_reported(target: SmokeTarget) -> None:
    results = _by_name(run_smoke(target.config()))
    for name in RATE_LIMIT_CHECKS:
        assert results[name].status == "passed", (name, results[name].detail)
        assert "RateLimit-Policy: " in results[name].detail
        assert ';q=' in results[name].detail


def test_rate_limit_headers_missing_fail_clearly(target: SmokeTarget) -> None:
    target.app.extensions["federation"].components["rate_limits"].enabled = False
    results = _by_name(run_smoke(target.config()))
    for name in RATE_LIMIT_CHECKS:
        assert results[name].status == "failed", name
        assert "returned no RateLimit-Policy and RateLimit headers" in results[name].detail


def test_write_mode_creates_one_smoke_tenant(target: SmokeTarget) -> None:
    before = target.tenant_count()
    results = _by_name(run_smoke(target.config(mode="write")))
    for name in WRITE_CHECKS:
        assert results[name].status == "passed", (name, results[name].detail)
    assert target.tenant_count() == before + 1


def test_key_with_every_entitlement_fails_403_check(target: SmokeTarget) -> None:
    results = _by_name(run_smoke(target.config(provider_readonly_key=target.key_all)))
    check = results["403 provider key lacking an entitlement"]
    assert check.status == "failed"
    assert "holds every entitlement" in check.detail


def test_foreign_tenant_id_option(target: SmokeTarget) -> None:
    results = _by_name(run_smoke(target.config(other_provider_key=None, other_provider_tenant_id=target.other_tenant_id)))
    assert results["404 tenant of another provider"].status == "passed"

    results = _by_name(run_smoke(target.config(other_provider_key=None, other_provider_tenant_id=target.own_tenant_id)))
    assert results["404 tenant of another provider"].status == "failed"
    assert "expected status 404 not_found, got 200" in results["404 tenant of another provider"].detail


def test_optional_checks_skip_without_keys(target: SmokeTarget) -> None:
    config = target.config(provider_readonly_key=None, developer_limited_key=None, other_provider_key=None, mode="write")
    results = _by_name(run_smoke(config))
    assert results["403 provider key lacking an entitlement"].status == "skipped"
    assert "FEDERATION_SMOKE_PROVIDER_READONLY_KEY" in results["403 provider key lacking an entitlement"].detail
    assert results["403 developer key lacking an entitlement"].status == "skipped"
    assert "FEDERATION_SMOKE_DEVELOPER_LIMITED_KEY" in results["403 developer key lacking an entitlement"].detail
    assert results["404 tenant of another provider"].status == "skipped"
    assert "FEDERATION_SMOKE_OTHER_PROVIDER_TENANT_ID" in results["404 tenant of another provider"].detail
    assert results["403 tenant create with the read-only key"].status == "skipped"


def test_wrong_key_fails_read_checks(target: SmokeTarget) -> None:
    results = run_smoke(target.config(provider_key=target.key_dev))
    tenants = _by_name(results)["200 GET /provider/v1/tenants as provider"]
    assert tenants.status == "failed"
    assert "expected status 200, got 401 (unauthorized" in tenants.detail


def test_same_origin_redirect_followed(target: SmokeTarget) -> None:
    results = _by_name(run_smoke(target.config(prefix="/moved")))
    assert results["OpenAPI document at /moved/openapi.json"].status == "passed"


def test_redirect_to_other_host_not_followed(target: SmokeTarget) -> None:
    results = run_smoke(target.config(prefix="/elsewhere"))
    document = _by_name(results)["OpenAPI document at /elsewhere/openapi.json"]
    assert document.status == "failed"
    assert "redirected (302) to another host, http://127.0.0.2:9/federation/openapi.json" in document.detail
    assert "does not follow it" in document.detail


def test_rate_limited_request_retried_once(target: SmokeTarget) -> None:
    results = run_smoke(target.config(prefix="/limited"))
    document = _by_name(results)["OpenAPI document at /limited/openapi.json"]
    assert document.status == "passed", document.detail
    assert document.duration_ms >= 900


def test_long_retry_after_not_waited(target: SmokeTarget) -> None:
    results = run_smoke(target.config(prefix="/limited-long"))
    document = _by_name(results)["OpenAPI document at /limited-long/openapi.json"]
    assert document.status == "failed"
    assert "got status 429" in document.detail
    assert document.duration_ms < 3000


def test_request_timeout(target: SmokeTarget) -> None:
    results = run_smoke(target.config(prefix="/slow", timeout=0.5))
    document = _by_name(results)["OpenAPI document at /slow/openapi.json"]
    assert document.status == "failed"
    assert "timed out after 0.5 s" in document.detail
    assert document.duration_ms < 1900


def test_unreachable_server_fails(target: SmokeTarget) -> None:
    closed_port_url = "http://127.0.0.1:9"
    results = run_smoke(target.config(base_url=closed_port_url))
    assert results[0].status == "failed"
    assert "ConnectionError" in results[0].detail


def _invoke(target: SmokeTarget, *args: str) -> tuple[int, str]:
    runner = target.app.test_cli_runner()
    result = runner.invoke(federation_cli, ["smoke", "--base-url", target.base_url, *args], env=target.environment())
    return result.exit_code, result.output


def test_cli_lines_and_summary(target: SmokeTarget) -> None:
    code, output = _invoke(target)
    assert code == 0, output
    lines = output.strip().splitlines()
    for line in lines[:-1]:
        assert re.match(r"^(PASS|FAIL|SKIP)  \S.*  \(\d+ ms\)", line), line
    assert re.fullmatch(r"\d+ passed, \d+ failed", lines[-1]), lines[-1]
    assert lines[-1] == f"{len(lines) - 1} passed, 0 failed"


def test_cli_json_report(target: SmokeTarget) -> None:
    code, output = _invoke(target, "--json", "--mode", "write")
    assert code == 0, output
    report = json.loads(output)
    assert report["base_url"] == target.base_url
    assert report["mode"] == "write"
    assert report["failed"] == 0
    assert report["passed"] + report["failed"] + report["skipped"] == len(report["checks"])
    assert {"name", "status", "duration_ms", "detail"} == set(report["checks"][0])


def test_output_contains_no_credential(target: SmokeTarget) -> None:
    for args in ((), ("--json",), ("--mode", "write")):
        _, output = _invoke(target, *args)
        for key in target.environment().values():
            assert key not in output
            assert key.split("_")[1] not in output


def test_missing_credential_is_usage_error(target: SmokeTarget) -> None:
    runner = target.app.test_cli_runner()
    environment = target.environment()
    environment["FEDERATION_SMOKE_DEVELOPER_KEY"] = ""
    result = runner.invoke(federation_cli, ["smoke", "--base-url", target.base_url], env=environment)
    assert result.exit_code == 2
    assert "FEDERATION_SMOKE_DEVELOPER_KEY" in result.output


@pytest.mark.parametrize("base_url", ["ftp://127.0.0.1", "127.0.0.1:5000", "http://127.0.0.1/?x=1"])
def test_invalid_base_url_rejected(base_url: str) -> None:
    environment = {"FEDERATION_SMOKE_PROVIDER_KEY": "ffp_x", "FEDERATION_SMOKE_DEVELOPER_KEY": "ffd_x"}
    result = CliRunner().invoke(smoke_command, ["--base-url", base_url], env=environment)
    assert result.exit_code == 2
    assert "http(s) URL" in result.output


def test_module_entry_point(target: SmokeTarget) -> None:
    environment = {**os.environ, **target.environment(), "FEDERATION_SMOKE_BASE_URL": target.base_url}
    completed = subprocess.run(
        [sys.executable, "-m", "flask_federation.smoke", "--timeout", "5"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert lines[0].startswith("PASS  OpenAPI document at /federation/openapi.json")
    assert re.fullmatch(r"\d+ passed, 0 failed", lines[-1])
