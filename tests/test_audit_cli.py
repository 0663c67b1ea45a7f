"""``flask federation audit list|export|verify|purge`` and the CLI as an audit actor."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_federation import ConfigurationError, Federation, admin
from flask_federation.audit.actors import cli_actor_name
from flask_federation.cli import federation_cli
from flask_federation.models import AuditChain
from flask_federation.state import get_state

from .audit_support import all_events, execute_sql
from .conftest import World, bearer

TENANTS = "/federation/provider/v1/tenants"


def _run(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(federation_cli, list(args))
    return result.exit_code, result.output


def _between_batches(app: Flask, world: World) -> dt.datetime:
    """Record a first batch of events, return a time after it, then record a second batch."""
    client = app.test_client()
    client.get(TENANTS, headers=bearer(world.key_a))
    client.get(TENANTS)
    middle = dt.datetime.now(dt.UTC)
    client.get(TENANTS, headers=bearer(world.key_a))
    client.get(TENANTS, headers=bearer(world.key_b))
    admin.create_provider("Later")
    return middle


def test_cli_actor_recorded(app: Flask) -> None:
    code, provider_id = _run(app, "create-provider", "From the CLI")
    assert code == 0
    event = all_events()[-1]
    assert event.action == "provider.create"
    assert event.owner_id == provider_id.strip()
    assert (event.actor_type, event.actor_id, event.actor_name) == ("system", "cli", cli_actor_name())


def test_set_entitlements_command(app: Flask, world: World) -> None:
    key_id = admin.list_keys(world.provider_a.public_id)[0].key_id
    code, output = _run(app, "set-entitlements", key_id, "-e", "tenants:read")
    assert code == 0, output
    assert "tenants:read" in output
    assert all_events()[-1].action == "key.update"
    code, output = _run(app, "set-entitlements", key_id, "-e", "diagnostics:read")
    assert code != 0
    assert "diagnostics:read" in output


def test_list_command(app: Flask, world: World) -> None:
    app.test_client().get(TENANTS, headers=bearer(world.key_a))
    chain = f"provider:{world.provider_a.public_id}"
    code, output = _run(app, "audit", "list", "--chain", chain, "--limit", "2", "--json")
    assert code == 0, output
    rows = [json.loads(line) for line in output.splitlines()]
    assert len(rows) == 2
    assert rows[0]["action"] == "tenant.list"
    assert rows[0]["sequence"] > rows[1]["sequence"]
    code, output = _run(app, "audit", "list", "--outcome", "success", "--action", "tenant.list")
    assert code == 0
    assert "tenant.list  success  200" in output
    assert all_events()[-1].action == "audit.read"
    assert all_events()[-1].chain == "system"


def test_list_rejects_naive_time(app: Flask) -> None:
    code, output = _run(app, "audit", "list", "--since", "2025-01-01T00:00:00")
    assert code != 0
    assert "timezone" in output


def test_export_time_range(app: Flask, world: World, tmp_path: Path) -> None:
    middle = _between_batches(app, world)
    code, output = _run(app, "audit", "export", "--since", middle.isoformat())
    assert code == 0, output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["action"] for line in lines] == ["tenant.list", "tenant.list", "provider.create"]
    assert all(line["occurred_at"] >= middle.isoformat() for line in lines)
    assert all("hash" in line and "prev_hash" in line for line in lines)

    target = tmp_path / "audit.jsonl"
    code, output = _run(app, "audit", "export", "--until", middle.isoformat(), "--output", str(target))
    assert code == 0, output
    exported = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert exported
    assert all(line["occurred_at"] < middle.isoformat() for line in exported)
    assert [line["occurred_at"] for line in exported] == sorted(line["occurred_at"] for line in exported)
    assert f"Exported {len(exported)} events" in output
    assert all_events()[-1].action == "audit.export"


def test_purge_keeps_chains_verifiable(app: Flask, world: World) -> None:
    middle = _between_batches(app, world)
    before = len(all_events())
    code, output = _run(app, "audit", "purge", "--before", middle.isoformat())
    assert code == 0, output
    assert "Deleted" in output
    remaining = all_events()
    assert len(remaining) < before
    assert all(event.occurred_at >= middle for event in remaining)
    code, output = _run(app, "audit", "verify")
    assert code == 0, output

    head = get_state().session.get(AuditChain, f"provider:{world.provider_a.public_id}", populate_existing=True)
    assert head is not None
    assert head.checkpoint_sequence > 0
    assert head.purged_at is not None

    app.test_client().get(TENANTS, headers=bearer(world.key_a))
    assert _run(app, "audit", "verify")[0] == 0
    purge_event = next(event for event in all_events() if event.action == "audit.purge")
    assert purge_event.chain == "system"
    assert purge_event.changes["deleted"][f"provider:{world.provider_a.public_id}"] > 0


def test_purge_everything_then_continue(app: Flask, world: World) -> None:
    app.test_client().get(TENANTS, headers=bearer(world.key_a))
    code, output = _run(app, "audit", "purge", "--before", (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat())
    assert code == 0, output
    assert [event.action for event in all_events()] == ["audit.purge"]
    assert _run(app, "audit", "verify")[0] == 0
    app.test_client().get(TENANTS, headers=bearer(world.key_a))
    code, output = _run(app, "audit", "verify")
    assert code == 0, output


def test_moved_checkpoint_detected(app: Flask, world: World) -> None:
    middle = _between_batches(app, world)
    assert _run(app, "audit", "purge", "--before", middle.isoformat())[0] == 0
    chain = f"provider:{world.provider_a.public_id}"
    # Purge more by hand, moving the checkpoint as a purge would, but without the digest.
    execute_sql(
        "DELETE FROM federation_audit_events WHERE chain = :chain AND sequence = "
        "(SELECT MIN(sequence) FROM federation_audit_events WHERE chain = :chain)",
        chain=chain,
    )
    execute_sql(
        "UPDATE federation_audit_chains SET checkpoint_sequence = checkpoint_sequence + 1 WHERE chain = :chain",
        chain=chain,
    )
    code, output = _run(app, "audit", "verify")
    assert code == 1
    assert "checkpoint" in output
    assert chain in output


def test_purge_skips_tampered_chain(app: Flask, world: World) -> None:
    middle = _between_batches(app, world)
    chain = f"provider:{world.provider_b.public_id}"
    execute_sql("UPDATE federation_audit_events SET action = 'x' WHERE chain = :chain AND sequence = 1", chain=chain)
    count_before = sum(1 for event in all_events() if event.chain == chain)
    code, output = _run(app, "audit", "purge", "--before", middle.isoformat())
    assert code == 1
    assert f"SKIPPED {chain}" in output
    assert sum(1 for event in all_events() if event.chain == chain) == count_before


def test_purge_needs_a_period(app: Flask) -> None:
    code, output = _run(app, "audit", "purge")
    assert code == 2
    assert "FEDERATION_AUDIT_RETENTION_DAYS" in output
    code, output = _run(app, "audit", "purge", "--older-than-days", "3", "--before", "2025-01-01T00:00:00+00:00")
    assert code == 2
    assert "not both" in output


def test_retention_setting_used(make_app: Any) -> None:
    app = make_app(FEDERATION_AUDIT_RETENTION_DAYS="30")
    with app.app_context():
        admin.create_provider("Recent")
        code, output = _run(app, "audit", "purge")
        assert code == 0, output
        assert "Deleted 0 events in all." in output
        assert [event.action for event in all_events()] == ["provider.create", "audit.purge"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("FEDERATION_AUDIT_HMAC_KEY", "too-short"),
        ("FEDERATION_AUDIT_RETENTION_DAYS", 0),
        ("FEDERATION_AUDIT_RETENTION_DAYS", "soon"),
        ("FEDERATION_AUDIT_ENABLED", "perhaps"),
        ("FEDERATION_AUDIT_REDACT_KEYS", 7),
    ],
)
def test_invalid_audit_setting_names_key(key: str, value: Any) -> None:
    app = Flask("bare")
    app.config.update(SECRET_KEY="s", SQLALCHEMY_DATABASE_URI="sqlite://", **{key: value})
    with pytest.raises(ConfigurationError, match=key):
        Federation(app)
