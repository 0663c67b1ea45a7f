"""The ``flask federation`` command group, published through the ``flask.commands`` entry point."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from flask import current_app
from flask.cli import with_appcontext

from . import admin
from .audit.actors import acting_as, cli_actor_name
from .audit.cli import audit_cli
from .contract import CHANGELOG, RELEASED_DOCUMENT, check_contract, load_document
from .demo import AlreadySeeded, seed_demo, smoke_environment
from .errors import FederationError
from .idempotency import StoreUnavailable, get_idempotency_store
from .models import metadata, utcnow
from .openapi import build_openapi, render_openapi
from .smoke import smoke_command
from .state import get_state

P = ParamSpec("P")
R = TypeVar("R")


def _command_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one-line click errors with a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except FederationError as error:
            get_state().session.rollback()
            detail = f" {json.dumps(error.details)}" if error.details else ""
            raise click.ClickException(f"{error.message}{detail}") from None
        except (RuntimeError, AlreadySeeded) as error:
            raise click.ClickException(str(error)) from None

    return wrapper


@click.group("federation")
@click.pass_context
def federation_cli(ctx: click.Context) -> None:
    """Manage the flask-federation database, providers, developers, API keys and the audit log."""
    # Every command's audit events name the CLI and the operating system user as their actor.
    ctx.with_resource(acting_as("cli", cli_actor_name()))


federation_cli.add_command(audit_cli)


federation_cli.add_command(smoke_command)


@federation_cli.command("init-db")
@with_appcontext
@_command_errors
def init_db() -> None:
    """Create the federation tables that do not exist yet."""
    metadata.create_all(get_state().db.engine)
    click.echo("Created the federation tables.")


@federation_cli.command("create-provider")
@click.argument("name")
@with_appcontext
@_command_errors
def create_provider(name: str) -> None:
    """Create a provider called NAME and print its id."""
    provider = admin.create_provider(name)
    click.echo(provider.public_id)


@federation_cli.command("create-developer")
@click.argument("name")
@with_appcontext
@_command_errors
def create_developer(name: str) -> None:
    """Create a developer called NAME and print its id."""
    developer = admin.create_developer(name)
    click.echo(developer.public_id)


@federation_cli.command("create-tenant")
@click.option("--provider", "provider_id", required=True, help="Owning provider id (prv_...).")
@click.option("--name", required=True, help="Display name.")
@click.option("--slug", required=True, help="Unique per provider: lowercase letters, digits, hyphens.")
@click.option("--region", required=True, help="Region, such as eu-west-1.")
@click.option("--status", type=click.Choice(["active", "suspended"]), default="active", show_default=True)
@click.option("--metadata", "metadata_json", default="{}", help="Metadata as a JSON object.")
@with_appcontext
@_command_errors
def create_tenant(provider_id: str, name: str, slug: str, region: str, status: str, metadata_json: str) -> None:
    """Create a tenant and print its id."""
    try:
        tenant_metadata = json.loads(metadata_json)
    except ValueError as error:
        raise click.BadParameter(f"not valid JSON: {error}", param_hint="--metadata") from None

    tenant = admin.create_tenant(
        provider_id, name=name, slug=slug, region=region, status=status, metadata=tenant_metadata
    )
    click.echo(tenant.public_id)


@federation_cli.command("issue-key")
@click.argument("owner_id")
@click.option(
    "--entitlement",
    "-e",
    "entitlements",
    multiple=True,
    required=True,
    help="Entitlement to grant; repeat for several.",
)
@click.option("--label", default="", help="Free text to recognise the key by.")
@click.option("--expires-in-days", type=click.IntRange(min=1), help="Expire the key after this many days.")
@click.option("--key-only", is_flag=True, help="Print only the key, for scripts.")
@with_appcontext
@_command_errors
def issue_key(
    owner_id: str, entitlements: tuple[str, ...], label: str, expires_in_days: int | None, key_only: bool
) -> None:
    """Issue an API key to OWNER_ID (prv_... or dev_...) and print it once."""
    expires_at = None
    if expires_in_days is not None:
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days)

    issued = admin.issue_key(owner_id, entitlements, label=label, expires_at=expires_at)
    if key_only:
        click.echo(issued.key)
        return

    click.echo(f"Key id:       {issued.credential.key_id}")
    click.echo(f"Entitlements: {', '.join(issued.credential.entitlements)}")
    click.echo(f"Expires:      {issued.credential.expires_at.isoformat() if issued.credential.expires_at else 'never'}")
    click.echo(f"Key:          {issued.key}")
    click.echo("Store the key now: it is not stored and cannot be shown again.")


@federation_cli.command("revoke-key")
@click.argument("key_id")
@with_appcontext
@_command_errors
def revoke_key(key_id: str) -> None:
    """Revoke the API key KEY_ID (ffp_... or ffd_...)."""
    credential = admin.revoke_key(key_id)
    assert credential.revoked_at is not None
    click.echo(f"Revoked {key_id} at {credential.revoked_at.isoformat()}.")


@federation_cli.command("set-entitlements")
@click.argument("key_id")
@click.option(
    "--entitlement",
    "-e",
    "entitlements",
    multiple=True,
    required=True,
    help="Entitlement the key keeps or gains; repeat for several. Those not named are removed.",
)
@with_appcontext
@_command_errors
def set_entitlements(key_id: str, entitlements: tuple[str, ...]) -> None:
    """Replace the entitlements of the API key KEY_ID."""
    credential = admin.set_key_entitlements(key_id, entitlements)
    click.echo(f"Entitlements of {key_id}: {', '.join(credential.entitlements)}.")


@federation_cli.command("list-keys")
@click.option("--owner", "owner_id", help="Only the keys of this provider or developer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of a table.")
@with_appcontext
@_command_errors
def list_keys(owner_id: str | None, as_json: bool) -> None:
    """List API keys by id; secrets are never stored, so never shown."""
    for credential in admin.list_keys(owner_id):
        owner = credential.provider or credential.developer
        row: dict[str, Any] = {
            "key_id": credential.key_id,
            "owner_id": owner.public_id if owner else None,
            "entitlements": credential.entitlements,
            "label": credential.label,
            "created_at": credential.created_at.isoformat(),
            "expires_at": credential.expires_at.isoformat() if credential.expires_at else None,
            "revoked_at": credential.revoked_at.isoformat() if credential.revoked_at else None,
            "last_used_at": credential.last_used_at.isoformat() if credential.last_used_at else None,
        }
        if as_json:
            click.echo(json.dumps(row))
        else:
            state = "revoked" if row["revoked_at"] else "active"
            click.echo(
                f"{row['key_id']}  {row['owner_id']}  {state:8}  {','.join(row['entitlements'])}  {row['label']}"
            )


@federation_cli.command("seed-demo")
@click.option("--providers", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option(
    "--tenants",
    type=click.IntRange(0, 1_000_000),
    default=1000,
    show_default=True,
    help="Tenants in all, spread among the providers.",
)
@click.option("--developers", type=click.IntRange(0, 50), default=2, show_default=True)
@click.option("--base-url", default="http://127.0.0.1:5000", show_default=True, help="Used in the printed curl lines.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: the counts, every key with its owner and entitlements, and smoke_environment.",
)
@with_appcontext
@_command_errors
def seed_demo_command(providers: int, tenants: int, developers: int, base_url: str, as_json: bool) -> None:
    """Fill an empty database with demo data and print the demo keys once, with curl lines."""
    keys = seed_demo(providers=providers, tenants=tenants, developers=developers)
    base_url = base_url.rstrip("/")
    url_prefix = get_state().settings.url_prefix
    if as_json:
        report = {
            "providers": providers,
            "tenants": tenants,
            "developers": developers,
            "keys": [dataclasses.asdict(demo_key) for demo_key in keys],
            "smoke_environment": smoke_environment(keys, base_url=base_url, prefix=url_prefix),
        }
        click.echo(json.dumps(report, indent=2))
        return

    prefix = base_url + url_prefix
    click.echo(f"Seeded {providers} providers, {tenants} tenants and {developers} developers.")
    click.echo("These keys are printed once; the database keeps only their hashes.\n")
    for demo_key in keys:
        click.echo(
            f"{demo_key.audience} {demo_key.owner_id} ({demo_key.owner_name}) [{', '.join(demo_key.entitlements)}]"
        )
        click.echo(f"  key: {demo_key.key}")
        if demo_key.audience == "provider":
            click.echo(f"  curl -H 'Authorization: Bearer {demo_key.key}' '{prefix}/provider/v1/tenants?limit=5'")
        else:
            click.echo(f"  curl -H 'Authorization: Bearer {demo_key.key}' '{prefix}/developer/v1/diagnostics'")


@federation_cli.command("purge-idempotency")
@with_appcontext
@_command_errors
def purge_idempotency() -> None:
    """Delete expired idempotency keys and their stored responses."""
    store = get_idempotency_store()
    if store.name == "redis":
        click.echo("The Redis idempotency store expires its keys itself; there is nothing to purge.")
        return

    try:
        purged = store.purge_expired(utcnow())
    except StoreUnavailable as error:
        raise click.ClickException(f"{error}. Check that the database is reachable, then run the command again.") from None

    click.echo(f"Purged {purged} expired idempotency {'key' if purged == 1 else 'keys'}.")


@federation_cli.command("openapi")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@with_appcontext
@_command_errors
def openapi(output: str | None) -> None:
    """Print the OpenAPI document of the federation API."""
    document = render_openapi(current_app)
    if output is None:
        click.echo(document, nl=False)
        return

    with open(output, "w", encoding="utf-8") as handle:
        handle.write(document)


@federation_cli.command("contract-check")
@click.option(
    "--released",
    type=click.Path(dir_okay=False, path_type=Path),
    default=RELEASED_DOCUMENT,
    show_default=True,
    help="OpenAPI document of the last release.",
)
@click.option(
    "--changelog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=CHANGELOG,
    show_default=True,
    help="Changelog whose Unreleased section lists the intentional breaks; a missing file allows none.",
)
@click.option(
    "--current",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Compare this OpenAPI document instead of the one the app generates.",
)
@with_appcontext
@_command_errors
def contract_check(released: Path, changelog: Path, current: Path | None) -> None:
    """Compare the OpenAPI document with the released one; exit 1 on breaks the changelog does not list."""
    try:
        released_document = load_document(released)
        current_document = load_document(current) if current is not None else build_openapi(current_app)
    except ValueError as error:
        raise click.ClickException(str(error)) from None

    changelog_text = changelog.read_text(encoding="utf-8") if changelog.is_file() else ""
    report = check_contract(released_document, current_document, changelog_text)
    click.echo(report.render())
    if not report.ok:
        raise SystemExit(1)
