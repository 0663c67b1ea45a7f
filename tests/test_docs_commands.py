"""Every command in the docs is run by a test or by .ci/run, so the docs cannot rot.

The tests below extract every command line from the fenced ``bash`` blocks of
README.md and docs/**/*.md and look each one up in ``REGISTRY``, which names
where it runs. Commands registered as ``HERE`` run in this file. Each block's
``HERE`` lines run as one bash script in a scratch copy of the repository's
examples, docs/api and changelog. They run against the example host app on
SQLite, or the README's own ``app.py`` for README blocks, with a live server
behind ``BASE_URL``. Documented URLs on ``http://127.0.0.1:5000`` are pointed
at that server, and ``curl`` runs with ``--fail-with-body`` so that an HTTP
error fails the block.

A block preceded by ``<!-- docs-test: empty-database -->`` starts without
providers; every other block gets a provider, a developer, keys and a tenant,
named by the shell variables that docs/index.md lists.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from flask import Flask

from flask_federation import admin
from flask_federation.models import metadata
from flask_federation.state import get_state

from .conftest import close_components
from .live_server import serve
from .services import skip_or_fail

REPOSITORY = Path(__file__).resolve().parent.parent
DOCUMENTS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").rglob("*.md"))]
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
EMPTY_DATABASE = "<!-- docs-test: empty-database -->"
DOCUMENTED_BASE_URL = "http://127.0.0.1:5000"
VENV_BIN = Path(sys.executable).parent

HERE = "tests/test_docs_commands.py::test_documented_commands_run"
CI = ".ci/run"


@dataclasses.dataclass(frozen=True)
class Exercised:
    """Where a documented command runs: a test id, ``.ci/run``, or ``manual`` with the reason it is not run."""

    where: str
    #: How the place runs the command when not as written, such as with other options.
    how: str = ""


#: Every documented command line, without its trailing comment, and where it runs.
REGISTRY: dict[str, Exercised] = {
    # README.md
    "pip install .": Exercised(
        "scripts/test.sh", "installs the same checkout, editable and with the test extras, for every .ci/run"
    ),
    "pip install '.[postgres]'": Exercised(
        "scripts/test.sh", "installs the same checkout with psycopg, through the test extra, for every .ci/run"
    ),
    "flask federation init-db": Exercised(HERE),
    'PROVIDER_ID=$(flask federation create-provider "Acme Hosting")': Exercised(HERE),
    'PROVIDER_KEY=$(flask federation issue-key "$PROVIDER_ID" -e tenants:read --key-only)': Exercised(HERE),
    'curl -H "Authorization: Bearer $PROVIDER_KEY" http://127.0.0.1:5000/reports': Exercised(HERE),
    'curl -H "Authorization: Bearer $PROVIDER_KEY" http://127.0.0.1:5000/federation/provider/v1/tenants': Exercised(HERE),
    "bash examples/run-demo.sh": Exercised("tests/test_docs_commands.py::test_run_demo_serves_seeded_app"),
    # The demo test sets PORT to a free port, which is what this variant of the command does.
    "PORT=5055 bash examples/run-demo.sh": Exercised("tests/test_docs_commands.py::test_run_demo_serves_seeded_app"),
    "bash scripts/test.sh": Exercised(CI),
    # docs/index.md
    ".venv/bin/mkdocs build --strict": Exercised(CI),
    # docs/benchmarks.md
    "createdb -h 127.0.0.1 -U postgres bench_guards": Exercised("manual", "a benchmark run by hand on its own database"),
    "python -m benchmarks.guards --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_guards --rounds 3": Exercised(
        "manual", "a load test with wrk and gunicorn, minutes long"
    ),
    "createdb -h 127.0.0.1 -U postgres bench_round_trips": Exercised("manual", "a benchmark run by hand on its own database"),
    "python -m benchmarks.round_trips --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_round_trips": Exercised(
        "manual", "a benchmark run by hand on its own database"
    ),
    "createdb -h 127.0.0.1 -U postgres bench_tokens": Exercised("manual", "a benchmark run by hand on its own database"),
    "python -m benchmarks.tokens --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_tokens": Exercised(
        "manual", "a benchmark run by hand on its own database"
    ),
    "createdb -h 127.0.0.1 -U postgres bench_memory": Exercised("manual", "a benchmark run by hand on its own database"),
    "python -m benchmarks.memory --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_memory": Exercised(
        "manual", "a load test of 100,000 requests, minutes long"
    ),
    "python -m benchmarks.memory --variant full_opt_in --requests 500000 --chunks 10 "
    "--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_memory": Exercised(
        "manual", "a load test of 500,000 requests, minutes long"
    ),
    "createdb -h 127.0.0.1 -U postgres bench": Exercised("manual", "a benchmark run by hand on its own database"),
    "python benchmarks/pagination.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench": Exercised(
        "manual", "a benchmark on 1,101,000 rows, far beyond the test suite's time budget"
    ),
    # docs/federation/audit.md
    "flask federation audit verify": Exercised(HERE),
    'flask federation audit verify --chain "provider:$PROVIDER_ID"': Exercised(HERE),
    "flask federation audit purge --older-than-days 400": Exercised(HERE),
    "flask federation audit purge": Exercised(HERE),
    "flask federation audit purge --before 2025-01-01T00:00:00+00:00": Exercised(HERE),
    # docs/federation/ci-cd.md
    "UPDATE_SCREENSHOTS=1 bash scripts/test.sh tests/test_api_reference.py -k screenshot": Exercised(
        "tests/test_api_reference.py::test_reference_screenshot",
        "takes the screenshot on every run, without UPDATE_SCREENSHOTS, so the committed image stays unchanged",
    ),
    # docs/federation/contracts.md
    "flask federation contract-check": Exercised(HERE),
    "flask federation contract-check --released old.json": Exercised(HERE),
    "flask federation contract-check --current new.json": Exercised(HERE),
    # docs/federation/e2e-smoke-howto.md
    'export FEDERATION_SMOKE_PROVIDER_KEY="$PROVIDER_KEY"': Exercised(HERE),
    'export FEDERATION_SMOKE_DEVELOPER_KEY="$DEVELOPER_KEY"': Exercised(HERE),
    'flask federation smoke --base-url "$BASE_URL"': Exercised(HERE),
    'python -m flask_federation.smoke --base-url "$BASE_URL"': Exercised(HERE),
    'flask federation issue-key "$PROVIDER_ID" -e tenants:read -e tenants:write -e audit:read --label "smoke: all" --key-only': Exercised(
        HERE
    ),
    'flask federation issue-key "$PROVIDER_ID" -e tenants:read --label "smoke: read only" --key-only': Exercised(HERE),
    'flask federation issue-key "$DEVELOPER_ID" -e diagnostics:read -e audit:read --label "smoke: all" --key-only': Exercised(
        HERE
    ),
    'flask federation issue-key "$DEVELOPER_ID" -e audit:read --label "smoke: no diagnostics" --key-only': Exercised(HERE),
    "flask federation seed-demo --tenants 50 --json > seed.json": Exercised(HERE),
    """jq -r '.smoke_environment | to_entries[] | "export \\(.key)=\\(.value | @sh)"' seed.json > smoke.env""": Exercised(HERE),
    ". ./smoke.env": Exercised(HERE),
    'flask federation smoke --base-url "$BASE_URL" --mode write': Exercised(HERE),
    # docs/federation/guardrails.md
    'curl -X POST http://127.0.0.1:5000/federation/provider/v1/tenants -H "Authorization: Bearer $PROVIDER_KEY" '
    '-H "Idempotency-Key: 3f1c9a52-6f0e-4e8b-9d0e-2b7f4c1a8e11" -H "Content-Type: application/json" '
    """-d '{"name": "Shop", "slug": "shop", "region": "eu-west-1"}'""": Exercised(HERE),
    "flask federation purge-idempotency": Exercised(HERE),
    # docs/federation/hosting.md
    "SMOKE_DATABASE=smoke bash scripts/deployment_smoke.sh": Exercised(CI),
    "gunicorn --workers 4 --bind 127.0.0.1:8000 examples.host_app.wsgi:app": Exercised(
        CI, "scripts/deployment_smoke.sh serves the same app with --workers 2 --bind 127.0.0.1:0 --worker-class sync"
    ),
    # docs/federation/integration.md
    'export DATABASE_URL="sqlite:///$PWD/app.db"': Exercised(HERE),
    'alembic -c examples/migrations/alembic.ini revision --autogenerate -m "Add the federation tables"': Exercised(HERE),
    "alembic -c examples/migrations/alembic.ini upgrade head": Exercised(HERE),
    'flask federation create-tenant --provider "$PROVIDER_ID" --name Shop --slug shop --region eu-west-1': Exercised(HERE),
    'flask federation list-keys --owner "$PROVIDER_ID"': Exercised(HERE),
    'flask federation set-entitlements "$KEY_ID" -e tenants:read': Exercised(HERE),
    'flask federation revoke-key "$KEY_ID"': Exercised(HERE),
    "flask federation openapi --output openapi.json": Exercised(HERE),
    # docs/federation/migration.md
    'curl -H "Authorization: Bearer $ACCESS_TOKEN" "$BASE_URL/federation/developer/v1/diagnostics"': Exercised(
        "tests/oidc/test_federation_bearer.py::test_developer_token_in_diagnostics",
        "sends a developer access token of the local OpenID provider to the same route through the test client",
    ),
}

#: Files a document's commands read, copied into the block's working directory: name there, source here.
DOCUMENT_FILES: dict[str, dict[str, Path]] = {
    "docs/federation/contracts.md": {
        "old.json": REPOSITORY / "docs" / "api" / "openapi.released.json",
        "new.json": REPOSITORY / "docs" / "api" / "openapi.json",
    },
}

#: Settings that every docs block's app runs with, from the environment as the example app reads them.
DOCS_SETTINGS = {"FEDERATION_AUDIT_RETENTION_DAYS": "400"}


@dataclasses.dataclass(frozen=True)
class Command:
    """One command line of a shell block: its text as written and its registry key."""

    document: str
    line: int
    source: str
    key: str


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced shell block of a document."""

    document: str
    line: int
    commands: tuple[Command, ...]
    empty_database: bool

    @property
    def block_id(self) -> str:
        return f"{self.document}:{self.line}"


def strip_comment(text: str) -> str:
    """Return ``text`` without a trailing shell comment; a ``#`` inside quotes or a word is kept."""
    quote = ""
    escaped = False
    for index, character in enumerate(text):
        if escaped:
            escaped = False
        elif character == "\\" and quote != "'":
            escaped = True
        elif quote:
            if character == quote:
                quote = ""
        elif character in "'\"":
            quote = character
        elif character == "#" and (index == 0 or text[index - 1].isspace()):
            return text[:index].rstrip()

    return text.rstrip()


def _commands(document: str, first_line: int, lines: list[str]) -> tuple[Command, ...]:
    commands: list[Command] = []
    pending: list[str] = []
    start = first_line
    for offset, line in enumerate(lines):
        if not pending:
            start = first_line + offset
            if not line.strip() or line.lstrip().startswith("#"):
                continue

        pending.append(line)
        if line.rstrip().endswith("\\"):
            continue

        joined = " ".join(part.rstrip().removesuffix("\\").strip() for part in pending)
        key = " ".join(strip_comment(joined).split())
        commands.append(Command(document, start, "\n".join(pending), key))
        pending = []

    return tuple(commands)


def extract_blocks(path: Path) -> list[Block]:
    """Return the fenced shell blocks of the Markdown file ``path``."""
    document = path.relative_to(REPOSITORY).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[index])
        if opening is None:
            index += 1
            continue

        fence = opening.group(2)
        language = opening.group(3).lower()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1

        if language in SHELL_LANGUAGES:
            previous = lines[index - 1].strip() if index > 0 else ""
            body = [line[len(opening.group(1)) :] for line in lines[index + 1 : end]]
            blocks.append(Block(document, index + 1, _commands(document, index + 2, body), previous == EMPTY_DATABASE))

        index = end + 1

    return blocks


BLOCKS = [block for path in DOCUMENTS for block in extract_blocks(path)]
COMMANDS = [command for block in BLOCKS for command in block.commands]
RUNNABLE = [block for block in BLOCKS if any(REGISTRY.get(command.key) == Exercised(HERE) for command in block.commands)]


def _ci_text() -> str:
    """Return .ci/run and every script under scripts/ that it calls."""
    run = (REPOSITORY / ".ci" / "run").read_text(encoding="utf-8")
    scripts = sorted(set(re.findall(r"scripts/[\w.-]+\.sh", run)))
    return "\n".join([run, *((REPOSITORY / script).read_text(encoding="utf-8") for script in scripts)])


# The registry


def test_every_command_registered() -> None:
    missing = [f"{command.document}:{command.line}: {command.key}" for command in COMMANDS if command.key not in REGISTRY]

    assert missing == [], (
        "These documented commands run nowhere. Add each to REGISTRY in tests/test_docs_commands.py with the test "
        "or .ci/run step that runs it, or make it runnable here:\n" + "\n".join(missing)
    )


def test_registry_has_no_stale_entries() -> None:
    documented = {command.key for command in COMMANDS}

    assert sorted(set(REGISTRY) - documented) == []


def test_registry_places_exist() -> None:
    ci_text = _ci_text()
    for key, exercised in REGISTRY.items():
        if exercised.where == "manual":
            assert exercised.how, key
        elif exercised.where == CI:
            assert exercised.how or key in ci_text, f"{key!r} is not in .ci/run or the scripts it calls"
        elif "::" in exercised.where:
            path, name = exercised.where.split("::")
            assert f"def {name}(" in (REPOSITORY / path).read_text(encoding="utf-8"), exercised.where
        else:
            assert (REPOSITORY / exercised.where).is_file(), exercised.where
            assert exercised.where in ci_text, f"{exercised.where} is not run by .ci/run"


def test_manual_commands_stay_few() -> None:
    manual = [key for key, exercised in REGISTRY.items() if exercised.where == "manual"]

    assert all(key.startswith(("createdb", "python benchmarks/", "python -m benchmarks.")) for key in manual), manual


def test_comment_stripping() -> None:
    cases = {
        "flask federation audit purge                       # uses X": "flask federation audit purge",
        "pip install '.[postgres]'   # the same": "pip install '.[postgres]'",
        'curl -H "X: a # b" url': 'curl -H "X: a # b" url',
        "echo a#b": "echo a#b",
        "# only a comment": "",
    }
    for text, expected in cases.items():
        assert strip_comment(text) == expected, text


# The README


def readme_example() -> str:
    """Return the README's embedding example, its first Python block."""
    text = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no Python block"
    return match.group(1)


def test_readme_example_fits_ten_lines() -> None:
    code_lines = [line for line in readme_example().splitlines() if line.strip()]

    assert len(code_lines) <= 10


# Running the blocks


def _import_readme_app(directory: Path) -> ModuleType:
    path = directory / "app.py"
    name = f"readme_app_{abs(hash(directory))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _workdir(root: Path, block: Block) -> Path:
    """Lay out the block's working directory like the repository root, with the files its document needs."""
    directory = root / block.block_id.replace("/", "_").replace(":", "_")
    directory.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "instance", "*.db")
    shutil.copytree(REPOSITORY / "examples", directory / "examples", ignore=ignore)
    shutil.copytree(REPOSITORY / "docs" / "api", directory / "docs" / "api")
    shutil.copy(REPOSITORY / "CHANGELOG.md", directory / "CHANGELOG.md")
    for name, source in DOCUMENT_FILES.get(block.document, {}).items():
        shutil.copy(source, directory / name)

    return directory


def _seed(app: Flask, empty: bool) -> dict[str, str]:
    """Create the tables and, unless ``empty``, the data the documented variables name."""
    with app.app_context():
        metadata.create_all(get_state().db.engine)
        if empty:
            get_state().session.remove()
            return {}

        provider = admin.create_provider("Acme Hosting")
        developer = admin.create_developer("Example Integrator")
        admin.create_tenant(provider.public_id, name="First shop", slug="first-shop", region="eu-west-1")
        provider_key = admin.issue_key(provider.public_id, ["tenants:read", "tenants:write", "audit:read"]).key
        spare = admin.issue_key(provider.public_id, ["tenants:read", "audit:read"], label="spare")
        developer_key = admin.issue_key(developer.public_id, ["diagnostics:read", "audit:read"]).key
        variables = {
            "PROVIDER_ID": provider.public_id,
            "PROVIDER_KEY": provider_key,
            "DEVELOPER_ID": developer.public_id,
            "DEVELOPER_KEY": developer_key,
            "KEY_ID": spare.credential.key_id,
        }
        get_state().session.remove()

    return variables


def _close(app: Flask) -> None:
    with app.app_context():
        close_components(app)
        get_state().db.engine.dispose()


@dataclasses.dataclass(frozen=True)
class BlockRun:
    script: str
    returncode: int
    output: str


def _run_block(block: Block, root: Path, shim_directory: Path) -> BlockRun:
    directory = _workdir(root, block)
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("FEDERATION_", "FLASK_"))}
    environment["PATH"] = os.pathsep.join([str(shim_directory), str(VENV_BIN), environment.get("PATH", "")])
    if block.document == "README.md":
        (directory / "app.py").write_text(readme_example(), encoding="utf-8")
        app: Flask = _import_readme_app(directory).app
    else:
        from examples.host_app.app import create_app

        database_url = f"sqlite:///{directory}/federation.db"
        environment.update(DOCS_SETTINGS, FLASK_APP="examples/host_app/app.py:create_app", DATABASE_URL=database_url)
        app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, **DOCS_SETTINGS})

    environment.update(_seed(app, block.empty_database))
    with ExitStack() as stack:
        stack.callback(_close, app)
        base_url = stack.enter_context(serve(app))
        environment["BASE_URL"] = base_url
        lines = [command.source for command in block.commands if REGISTRY.get(command.key) == Exercised(HERE)]
        script = "set -euo pipefail\n" + "\n".join(lines).replace(DOCUMENTED_BASE_URL, base_url) + "\n"
        completed = subprocess.run(
            ["bash", "-c", script],
            cwd=directory,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    return BlockRun(script, completed.returncode, completed.stdout + completed.stderr)


@pytest.fixture(scope="module")
def shim_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a directory with a ``curl`` that fails on HTTP errors, to put first on PATH."""
    curl = shutil.which("curl")
    if curl is None:
        skip_or_fail("curl is not installed; install it to run the documented curl commands")
    if shutil.which("jq") is None:
        skip_or_fail("jq is not installed; install it to run the documented jq command")

    directory = tmp_path_factory.mktemp("shims")
    shim = directory / "curl"
    shim.write_text(f'#!/bin/sh\nexec {curl} --silent --show-error --fail-with-body "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return directory


@pytest.fixture(scope="module")
def block_runs(tmp_path_factory: pytest.TempPathFactory, shim_directory: Path) -> dict[str, BlockRun]:
    """Run every block with commands registered here, four at a time, because each flask command takes a second."""
    root = tmp_path_factory.mktemp("docs-commands")
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = pool.map(lambda block: _run_block(block, root, shim_directory), RUNNABLE)
        return {block.block_id: run for block, run in zip(RUNNABLE, runs, strict=True)}


@pytest.mark.parametrize("block_id", [block.block_id for block in RUNNABLE])
def test_documented_commands_run(block_runs: dict[str, BlockRun], block_id: str) -> None:
    run = block_runs[block_id]

    assert run.returncode == 0, f"{block_id} failed with exit status {run.returncode}.\n{run.script}\n{run.output}"


# The demo script


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Run examples/run-demo.sh on a free port; yield its base URL and log, and stop it."""
    port = _free_port()
    log_path = tmp_path / "demo.log"
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("FEDERATION_", "FLASK_"))}
    environment.update(PORT=str(port), DEMO_INSTANCE_DIR=str(tmp_path / "instance"))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["bash", "examples/run-demo.sh"],
            cwd=REPOSITORY,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text(encoding="utf-8")
            try:
                requests.get(f"{base_url}/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log_path.read_text(encoding="utf-8")
                time.sleep(0.2)

        yield base_url, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_run_demo_serves_seeded_app(demo_server: tuple[str, Path]) -> None:
    base_url, log_path = demo_server
    output = log_path.read_text(encoding="utf-8")
    keys = re.findall(r"^  key: (\S+)$", output, flags=re.MULTILINE)
    provider_key = next(key for key in keys if key.startswith("ffp_"))
    curl_lines = re.findall(r"^  curl .*$", output, flags=re.MULTILINE)

    tenants: Any = requests.get(
        f"{base_url}/federation/provider/v1/tenants", headers={"Authorization": f"Bearer {provider_key}"}, timeout=10
    ).json()
    announcements = requests.get(
        f"{base_url}/partner/announcements", headers={"Authorization": f"Bearer {provider_key}"}, timeout=10
    )

    assert "Seeded 3 providers, 1000 tenants and 2 developers." in output
    assert len(keys) == 9
    assert all(f"'{base_url}/federation/" in line for line in curl_lines)
    assert tenants["ok"] is True
    assert len(tenants["data"]["items"]) == 20
    assert announcements.status_code == 200
