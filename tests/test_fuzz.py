"""Fuzzing the API in-process with schemathesis, from the committed OpenAPI document.

Every operation gets generated requests, valid ones and invalid ones, sent as a
provider or a developer on seeded data, on generated tenant ids and on the
caller's own tenant. Each response must be documented: no 5xx, a documented
status, content type, headers and body schema. The default run is short; the
long one runs under ``-m slow`` (``tox -e fuzz``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from .conftest import World

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
SHORT_EXAMPLES = 8
LONG_EXAMPLES = int(os.environ.get("FEDERATION_FUZZ_EXAMPLES", "100"))


class FuzzRun:
    """The distinct failures and the statuses seen per operation, over every operation fuzzed."""

    def __init__(self, app: Flask, max_examples: int, derandomize: bool) -> None:
        from schemathesis import checks as schemathesis_checks

        self.app = app
        self.max_examples = max_examples
        self.derandomize = derandomize
        self.checks = [getattr(schemathesis_checks, name) for name in CHECK_NAMES]
        self.failures: dict[tuple[str, str], str] = {}
        self.statuses: dict[str, set[int]] = {}

    def fuzz(self, strategy: Any, label: str, key: str) -> None:
        """Send ``max_examples`` cases of ``strategy`` with ``key`` and record what fails."""
        from hypothesis import HealthCheck, Phase, given, settings

        # Failures are collected rather than raised, so one run reports every distinct problem
        # and Hypothesis spends no time shrinking.
        @settings(
            max_examples=self.max_examples,
            deadline=None,
            database=None,
            derandomize=self.derandomize,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def send(case: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
            response = case.call(app=self.app)
            self.statuses.setdefault(label, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=self.checks)
            except Exception as error:
                summary = str(error).strip().splitlines()[0]
                self.failures.setdefault((label, summary), f"{label}: {error}")

        send()


def _fuzz(app: Flask, world: World, max_examples: int, derandomize: bool) -> FuzzRun:
    """Fuzz every operation of the committed document, positive and negative cases alike."""
    from schemathesis import GenerationMode

    run = FuzzRun(app, max_examples, derandomize)
    schema = schemathesis.openapi.from_path(DOCUMENT)
    for result in schema.get_all_operations():
        operation = result.ok()
        key = world.key_a if operation.path.startswith("/provider/") else world.key_dev
        variants: list[dict[str, Any]] = [{}]
        if "{tenant_id}" in operation.path:
            variants.append({"path_parameters": {"tenant_id": world.tenant_a.public_id}})

        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for variant in variants:
                run.fuzz(operation.as_strategy(generation_mode=mode, **variant), operation.label, key)

    return run


@pytest.fixture
def fuzz_app(make_app: Callable[..., Flask]) -> Flask:
    # Quotas far above the request count, so that fuzzing reaches the handlers instead of 429s.
    return make_app(FEDERATION_PROVIDER_RATE_LIMIT="100000/minute", FEDERATION_DEVELOPER_RATE_LIMIT="100000/minute")


def _check(app: Flask, max_examples: int, derandomize: bool) -> None:
    with app.app_context():
        world = World()
        run = _fuzz(app, world, max_examples, derandomize)

    statuses = run.statuses
    assert not run.failures, "\n\n".join(run.failures.values())
    # The seeded tenant makes the reads and updates succeed at least once, so the handlers ran.
    assert 200 in statuses["GET /provider/v1/tenants/{tenant_id}"]
    assert 200 in statuses["GET /provider/v1/tenants"]
    assert 201 in statuses["POST /provider/v1/tenants"]
    assert 200 in statuses["GET /developer/v1/diagnostics"]


def test_fuzz_short(fuzz_app: Flask) -> None:
    _check(fuzz_app, SHORT_EXAMPLES, derandomize=True)


@pytest.mark.slow
def test_fuzz_long(fuzz_app: Flask) -> None:
    _check(fuzz_app, LONG_EXAMPLES, derandomize=False)
