"""The ``smoke`` command, shared by ``flask federation smoke`` and ``python -m flask_federation.smoke``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import click

from .checks import CheckResult, SmokeConfig, run_smoke

FC = TypeVar("FC", bound=Callable[..., object])

_LABELS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def _validate_base_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise click.BadParameter(f"must be an http(s) URL such as https://api.example.com, got {value!r}.")
    return value.rstrip("/")


def _validate_prefix(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith("/") or value.endswith("/"):
        raise click.BadParameter(f"must start with '/' and not end with it, such as /federation, got {value!r}.")
    return value


def summary_line(results: list[CheckResult]) -> str:
    """Return 'N passed, N failed', with ', N skipped' when checks were skipped."""
    counts = {status: sum(1 for result in results if result.status == status) for status in _LABELS}
    line = f"{counts['passed']} passed, {counts['failed']} failed"
    return line + (f", {counts['skipped']} skipped" if counts["skipped"] else "")


def render_text(results: list[CheckResult]) -> str:
    """Return one line per check with its duration, then the summary line alone."""
    lines = []
    for result in results:
        line = f"{_LABELS[result.status]}  {result.name}  ({result.duration_ms:.0f} ms)"
        if result.detail and result.status != "passed":
            line += f"  {result.detail}"
        lines.append(line)
    lines.append(summary_line(results))
    return "\n".join(lines)


def render_json(config: SmokeConfig, results: list[CheckResult]) -> str:
    """Return the machine-readable report; it names no credential."""
    report = {
        "base_url": config.base_url,
        "prefix": config.prefix,
        "mode": config.mode,
        "passed": sum(1 for result in results if result.status == "passed"),
        "failed": sum(1 for result in results if result.status == "failed"),
        "skipped": sum(1 for result in results if result.status == "skipped"),
        "checks": [
            {"name": result.name, "status": result.status, "duration_ms": result.duration_ms, "detail": result.detail} for result in results
        ],
    }
    return json.dumps(report, indent=2)


def _credential(name: str, variable: str, help_text: str) -> Callable[[FC], FC]:
    return click.option(name, envvar=variable, show_envvar=True, help=help_text)


@click.command("smoke")
@click.option(
    "--base-url",
    required=True,
    envvar="FEDERATION_SMOKE_BASE_URL",
    show_envvar=True,
    callback=_validate_base_url,
    help="Scheme, host and port of the deployment, such as https://api.example.com.",
)
@click.option(
    "--prefix",
    default="/federation",
    envvar="FEDERATION_SMOKE_PREFIX",
    show_default=True,
    show_envvar=True,
    callback=_validate_prefix,
    help="FEDERATION_URL_PREFIX of the deployment.",
)
@click.option(
    "--mode",
    type=click.Choice(["read-only", "write"]),
    default="read-only",
    show_default=True,
    help="'write' also creates smoke tenants (slug smoke-<timestamp>-<random>) to check idempotent creates.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=300),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each response.",
)
@click.option(
    "--region",
    default="eu-west-1",
    show_default=True,
    help="Region of the smoke tenants that --mode write creates.",
)
@_credential(
    "--provider-key",
    "FEDERATION_SMOKE_PROVIDER_KEY",
    "Provider key with every read entitlement, and tenants:write for --mode write.",
)
@_credential(
    "--provider-readonly-key",
    "FEDERATION_SMOKE_PROVIDER_READONLY_KEY",
    "Key of the same provider lacking an entitlement, such as tenants:write, for the 403 checks.",
)
@_credential(
    "--other-provider-key",
    "FEDERATION_SMOKE_OTHER_PROVIDER_KEY",
    "Key of a second provider, to find a foreign tenant for the 404 check.",
)
@_credential(
    "--other-provider-tenant-id",
    "FEDERATION_SMOKE_OTHER_PROVIDER_TENANT_ID",
    "Id of a tenant of another provider, for the 404 check, instead of --other-provider-key.",
)
@_credential("--developer-key", "FEDERATION_SMOKE_DEVELOPER_KEY", "Developer key with every read entitlement.")
@_credential(
    "--developer-limited-key",
    "FEDERATION_SMOKE_DEVELOPER_LIMITED_KEY",
    "Developer key lacking an entitlement, for the 403 check.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of one line per check.")
@click.pass_context
def smoke_command(
    ctx: click.Context,
    /,
    base_url: str,
    prefix: str,
    mode: str,
    timeout: float,
    region: str,
    provider_key: str | None,
    provider_readonly_key: str | None,
    other_provider_key: str | None,
    other_provider_tenant_id: str | None,
    developer_key: str | None,
    developer_limited_key: str | None,
    as_json: bool,
) -> None:
    """Check a running federation API from outside: statuses, envelopes and headers of every read route.

    Prefer the environment variables for keys: options show up in process lists.
    Exits 1 when any check fails, 2 on invalid options.
    """
    if not provider_key:
        raise click.UsageError("Missing a credential: set FEDERATION_SMOKE_PROVIDER_KEY or pass --provider-key.")
    if not developer_key:
        raise click.UsageError("Missing a credential: set FEDERATION_SMOKE_DEVELOPER_KEY or pass --developer-key.")

    config = SmokeConfig(
        base_url=base_url,
        prefix=prefix,
        mode="write" if mode == "write" else "read-only",
        timeout=timeout,
        region=region,
        provider_key=provider_key,
        developer_key=developer_key,
        provider_readonly_key=provider_readonly_key or None,
        developer_limited_key=developer_limited_key or None,
        other_provider_key=other_provider_key or None,
        other_provider_tenant_id=other_provider_tenant_id or None,
    )
    results = run_smoke(config)
    click.echo(render_json(config, results) if as_json else render_text(results))
    if any(result.status == "failed" for result in results):
        ctx.exit(1)
