"""``flask federation audit list|export|verify|purge``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask.cli import with_appcontext

from ..models.audit import OUTCOMES
from ..state import get_state
from ..transaction import transaction
from .queries import AuditFilter, iter_events, list_page
from .retention import purge
from .verify import verify_chains
from .writer import audit_settings, record

F = TypeVar("F", bound=Callable[..., Any])


def _parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    """Parse an ISO 8601 time with a timezone, such as 2025-01-31T00:00:00+00:00."""
    if value is None:
        return None

    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2025-01-31T00:00:00+00:00.") from None

    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone; add one, such as +00:00 or Z.")

    return parsed


def _filter_options(command: F) -> F:
    options = (
        click.option("--chain", help="Only this chain: provider:prv_..., developer:dev_..., system or anonymous."),
        click.option("--action", help="Only this action, such as tenant.read."),
        click.option("--outcome", type=click.Choice(OUTCOMES), help="Only this outcome."),
        click.option("--since", callback=_parse_time, help="Only events at or after this ISO 8601 time."),
        click.option("--until", callback=_parse_time, help="Only events before this ISO 8601 time."),
    )
    for option in reversed(options):
        command = option(command)

    return command


def _record_system_read(action: str, count: int, filters: AuditFilter) -> None:
    with transaction():
        record(action, target_type="audit_log", result_count=count, changes={"filters": filters.binding()})


@click.group("audit")
def audit_cli() -> None:
    """List, export, verify and purge the audit log."""


@audit_cli.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Events to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON Lines instead of a table.")
@with_appcontext
def list_command(limit: int, as_json: bool, **filter_values: Any) -> None:
    """Show the newest events first."""
    filters = AuditFilter(**filter_values)
    page = list_page(filters, subject="cli", limit=limit)
    for event in page.items:
        if as_json:
            click.echo(json.dumps(event, sort_keys=True))
        else:
            click.echo(
                f"{event['occurred_at']}  {event['chain']}#{event['sequence']}  {event['action']}  "
                f"{event['outcome']}  {event['http_status'] or '-'}  {event['actor_type']}:{event['actor_id'] or '-'}  "
                f"{event['target_type'] or '-'}:{event['target_id'] or '-'}"
            )

    _record_system_read("audit.read", len(page.items), filters)


@audit_cli.command("export")
@_filter_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of standard output.",
)
@with_appcontext
def export_command(output: str | None, **filter_values: Any) -> None:
    """Write the events as JSON Lines, oldest first, one event per line."""
    filters = AuditFilter(**filter_values)
    count = 0
    with click.open_file(output or "-", "w", encoding="utf-8") as handle:
        for event in iter_events(filters):
            handle.write(json.dumps(event, sort_keys=True, separators=(",", ":")) + "\n")
            count += 1

    _record_system_read("audit.export", count, filters)
    if output:
        click.echo(f"Exported {count} events to {output}.", err=True)


@audit_cli.command("verify")
@click.option("--chain", "chains", multiple=True, help="Verify only this chain; repeat for several.")
@with_appcontext
def verify_command(chains: tuple[str, ...]) -> None:
    """Check every hash chain; name the first altered, inserted or deleted event and exit 1 on any."""
    report = verify_chains(get_state().session, audit_settings().hmac_key, chains or None)
    get_state().session.rollback()
    for problem in report.problems:
        location = f" at sequence {problem.sequence}" if problem.sequence is not None else ""
        click.echo(f"FAILED {problem.chain}{location}: {problem.message}", err=True)

    if not report.ok:
        raise click.exceptions.Exit(1)

    click.echo(f"Verified {report.events} events in {len(report.results)} chains.")


@audit_cli.command("purge")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=1),
    help="Delete events older than this many days. Default: FEDERATION_AUDIT_RETENTION_DAYS.",
)
@click.option("--before", callback=_parse_time, help="Delete events before this ISO 8601 time instead.")
@with_appcontext
def purge_command(older_than_days: int | None, before: dt.datetime | None) -> None:
    """Delete old events, keeping each chain verifiable from its first remaining event."""
    try:
        result = purge(older_than_days, before=before)
    except ValueError as error:
        raise click.UsageError(str(error)) from None

    for chain, count in sorted(result.deleted.items()):
        click.echo(f"Deleted {count} events from {chain}.")

    click.echo(f"Deleted {result.total} events in all.")
    for problem in result.skipped:
        click.echo(f"SKIPPED {problem.chain}: it fails verification ({problem.message}) Run 'audit verify'.", err=True)

    if result.skipped:
        raise click.exceptions.Exit(1)
