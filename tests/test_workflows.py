"""The GitHub Actions workflows parse and run what the docs say they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"
SMOKE_SECRETS = (
    "FEDERATION_SMOKE_PROVIDER_KEY",
    "FEDERATION_SMOKE_PROVIDER_READONLY_KEY",
    "FEDERATION_SMOKE_OTHER_PROVIDER_KEY",
    "FEDERATION_SMOKE_OTHER_PROVIDER_TENANT_ID",
    "FEDERATION_SMOKE_DEVELOPER_KEY",
    "FEDERATION_SMOKE_DEVELOPER_LIMITED_KEY",
)


def _load(name: str) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    document = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _triggers(document: dict[str, Any]) -> Any:
    # YAML 1.1 reads the bare key `on` as the boolean true.
    return document.get("on", document.get(True))


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_ci_workflow() -> None:
    document = _load("ci.yml")
    assert set(_triggers(document)) == {"push", "pull_request"}
    job = document["jobs"]["test"]
    assert set(job["services"]) == {"postgres", "redis"}
    assert job["env"]["CI"] == "true"
    assert job["env"]["FEDERATION_TEST_POSTGRES_URL"].startswith("postgresql+psycopg://")
    assert job["env"]["FEDERATION_TEST_REDIS_URL"].startswith("redis://127.0.0.1:6379/")
    runs = _runs(job)
    assert "bash scripts/test.sh" in runs
    assert ".venv/bin/ruff check" in runs
    assert ".venv/bin/mypy" in runs
    assert "flask federation contract-check" in runs
    assert "bash scripts/deployment_smoke.sh" in runs
    assert "mkdocs build --strict" in runs


def test_smoke_workflow() -> None:
    document = _load("e2e-smoke.yml")
    dispatch = _triggers(document)["workflow_dispatch"]
    assert dispatch["inputs"]["base_url"]["required"] is True
    assert dispatch["inputs"]["mode"]["options"] == ["read-only", "write"]
    step = next(step for step in document["jobs"]["smoke"]["steps"] if "flask_federation.smoke" in step.get("run", ""))
    assert step["env"]["FEDERATION_SMOKE_BASE_URL"] == "${{ inputs.base_url }}"
    for name in SMOKE_SECRETS:
        assert step["env"][name] == f"${{{{ secrets.{name} }}}}", name
    assert "${{" not in step["run"]
