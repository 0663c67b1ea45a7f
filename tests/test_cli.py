"""The ``flask federation`` commands: success output and one-line errors."""

from __future__ import annotations

import json

from flask import Flask

from flask_federation.cli import federation_cli


def _run(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(federation_cli, list(args))
    return result.exit_code, result.output


def test_provisioning_round_trip(app: Flask) -> None:
    code, provider_id = _run(app, "create-provider", "Cli Provider")
    assert code == 0
    provider_id = provider_id.strip()
    assert provider_id.startswith("prv_")

    code, tenant_id = _run(
        app,
        "create-tenant",
        "--provider",
        provider_id,
        "--name",
        "Shop",
        "--slug",
        "shop",
        "--region",
        "eu-west-1",
        "--metadata",
        '{"plan": "team"}',
    )
    assert code == 0
    assert tenant_id.strip().startswith("ten_")

    code, key = _run(app, "issue-key", provider_id, "-e", "tenants:read", "--key-only")
    assert code == 0
    key = key.strip()
    assert key.startswith("ffp_")
    response = app.test_client().get("/federation/provider/v1/tenants", headers={"Authorization": f"Bearer {key}"})
    assert response.json["data"]["items"][0]["id"] == tenant_id.strip()

    code, listing = _run(app, "list-keys", "--json")
    assert code == 0
    rows = [json.loads(line) for line in listing.splitlines()]
    assert rows[0]["owner_id"] == provider_id
    assert key not in listing

    code, output = _run(app, "revoke-key", rows[0]["key_id"])
    assert code == 0
    assert "Revoked" in output


def test_issue_key_prints_key_once_with_warning(app: Flask) -> None:
    _, developer_id = _run(app, "create-developer", "Dev")
    code, output = _run(app, "issue-key", developer_id.strip(), "-e", "diagnostics:read", "--expires-in-days", "30")
    assert code == 0
    assert "ffd_" in output
    assert "cannot be shown again" in output


def test_bad_arguments_give_one_line_error(app: Flask) -> None:
    cases = [
        ("issue-key", "prv_missing", "-e", "tenants:read"),
        ("issue-key", "nobody", "-e", "tenants:read"),
        ("revoke-key", "ffp_nothing"),
        ("create-tenant", "--provider", "prv_missing", "--name", "x", "--slug", "x", "--region", "eu"),
        ("create-tenant", "--provider", "prv_x", "--name", "x", "--slug", "x", "--region", "eu", "--metadata", "{oops"),
    ]
    for args in cases:
        code, output = _run(app, *args)
        assert code != 0, args
        assert "Traceback" not in output, args
        assert "Error" in output, args


def test_unknown_entitlement_error(app: Flask) -> None:
    _, provider_id = _run(app, "create-provider", "P")
    code, output = _run(app, "issue-key", provider_id.strip(), "-e", "tenants:delete")
    assert code != 0
    assert "tenants:delete" in output


def test_duplicate_slug_error(app: Flask) -> None:
    _, provider_id = _run(app, "create-provider", "P")
    args = ("create-tenant", "--provider", provider_id.strip(), "--name", "x", "--slug", "dup", "--region", "eu")
    assert _run(app, *args)[0] == 0
    code, output = _run(app, *args)
    assert code != 0
    assert "slug" in output


def test_seed_demo_prints_keys_and_refuses_second_run(app: Flask) -> None:
    code, output = _run(app, "seed-demo", "--tenants", "30")
    assert code == 0
    assert output.count("ffp_") >= 6
    assert "curl -H" in output
    code, output = _run(app, "seed-demo")
    assert code != 0
    assert "already" in output


def test_seed_demo_json_lists_keys(app: Flask) -> None:
    code, output = _run(app, "seed-demo", "--tenants", "30", "--json", "--base-url", "http://127.0.0.1:8000/")
    assert code == 0
    report = json.loads(output)

    assert (report["providers"], report["tenants"], report["developers"]) == (3, 30, 2)
    assert len(report["keys"]) == 3 * 2 + 2 + 1
    first = report["keys"][0]
    assert set(first) == {"owner_id", "owner_name", "audience", "entitlements", "key", "label"}
    client = app.test_client()
    for demo_key in report["keys"]:
        path = "/federation/provider/v1/tenants" if demo_key["audience"] == "provider" else "/federation/developer/v1/diagnostics"
        expected = 403 if "diagnostics:read" not in demo_key["entitlements"] and demo_key["audience"] == "developer" else 200
        assert client.get(path, headers={"Authorization": f"Bearer {demo_key['key']}"}).status_code == expected, demo_key


def test_seed_demo_json_smoke_environment(app: Flask) -> None:
    code, output = _run(app, "seed-demo", "--tenants", "10", "--json", "--base-url", "http://127.0.0.1:8000/")
    assert code == 0
    report = json.loads(output)
    environment = report["smoke_environment"]
    owners = {demo_key["key"]: demo_key for demo_key in report["keys"]}

    assert environment["FEDERATION_SMOKE_BASE_URL"] == "http://127.0.0.1:8000"
    assert environment["FEDERATION_SMOKE_PREFIX"] == "/federation"
    provider = owners[environment["FEDERATION_SMOKE_PROVIDER_KEY"]]
    read_only = owners[environment["FEDERATION_SMOKE_PROVIDER_READONLY_KEY"]]
    other = owners[environment["FEDERATION_SMOKE_OTHER_PROVIDER_KEY"]]
    developer = owners[environment["FEDERATION_SMOKE_DEVELOPER_KEY"]]
    limited = owners[environment["FEDERATION_SMOKE_DEVELOPER_LIMITED_KEY"]]
    assert set(provider["entitlements"]) == {"tenants:read", "tenants:write", "audit:read"}
    assert read_only["owner_id"] == provider["owner_id"]
    assert "tenants:write" not in read_only["entitlements"]
    assert other["owner_id"] != provider["owner_id"]
    assert set(developer["entitlements"]) == {"diagnostics:read", "audit:read"}
    assert limited["owner_id"] == developer["owner_id"]
    assert set(limited["entitlements"]) < set(developer["entitlements"])


def test_seed_demo_json_without_developers(app: Flask) -> None:
    code, output = _run(app, "seed-demo", "--providers", "1", "--tenants", "1", "--developers", "0", "--json")
    assert code == 0
    environment = json.loads(output)["smoke_environment"]

    assert "FEDERATION_SMOKE_PROVIDER_KEY" in environment
    assert "FEDERATION_SMOKE_OTHER_PROVIDER_KEY" not in environment
    assert "FEDERATION_SMOKE_DEVELOPER_KEY" not in environment
