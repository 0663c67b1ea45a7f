"""The Alembic example in examples/migrations: autogenerate picks up the federation tables, and they work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script
from sqlalchemy import create_engine, inspect, text

from examples.host_app.app import create_app, db
from flask_federation import admin
from flask_federation.models import metadata as federation_metadata

from .conftest import close_components

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLE = REPOSITORY / "examples" / "migrations"


def _drop_everything(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        federation_metadata.drop_all(connection)
        db.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture
def alembic_config(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Config]:
    """Return the example's Alembic configuration, copied so that generated revisions stay in tmp_path."""
    shutil.copytree(EXAMPLE, tmp_path / "migrations")
    config = Config(str(tmp_path / "migrations" / "alembic.ini"))
    # The test runner keeps its logging configuration; the alembic command line would apply the ini's.
    config.attributes["configure_logger"] = False
    monkeypatch.setenv("DATABASE_URL", database_url)
    _drop_everything(database_url)
    yield config
    _drop_everything(database_url)


def test_autogenerate_creates_federation_tables(alembic_config: Config, database_url: str) -> None:
    revision = command.revision(alembic_config, message="create host and federation tables", autogenerate=True)
    command.upgrade(alembic_config, "head")

    engine = create_engine(database_url)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        drift = compare_metadata(MigrationContext.configure(connection), [db.metadata, federation_metadata])
    engine.dispose()

    assert set(federation_metadata.tables) <= tables
    assert set(db.metadata.tables) <= tables
    assert drift == []
    assert isinstance(revision, Script)
    assert "flask_federation" not in Path(revision.path).read_text(encoding="utf-8")


def test_migrated_database_serves_requests(alembic_config: Config, database_url: str) -> None:
    command.revision(alembic_config, message="create host and federation tables", autogenerate=True)
    command.upgrade(alembic_config, "head")
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True})

    with app.app_context():
        provider = admin.create_provider("Migrated Provider")
        admin.create_tenant(provider.public_id, name="Shop", slug="shop", region="eu-west-1")
        key = admin.issue_key(provider.public_id, ["tenants:read", "tenants:write", "audit:read"]).key
        client = app.test_client()
        listing = client.get("/federation/provider/v1/tenants", headers={"Authorization": f"Bearer {key}"})
        created = client.post(
            "/federation/provider/v1/tenants",
            json={"name": "Second", "slug": "second", "region": "eu-west-1"},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "migrated-create-1"},
        )
        audit = client.get("/federation/provider/v1/audit", headers={"Authorization": f"Bearer {key}"})
        # The idempotency store has a connection pool of its own; close it before the tables are dropped.
        close_components(app)
        db.engine.dispose()

    assert listing.status_code == 200
    assert [tenant["slug"] for tenant in listing.json["data"]["items"]] == ["shop"]
    assert created.status_code == 201
    assert audit.status_code == 200
    assert audit.json["data"]["items"][0]["action"] == "tenant.create"


def test_downgrade_removes_federation_tables(alembic_config: Config, database_url: str) -> None:
    command.revision(alembic_config, message="create host and federation tables", autogenerate=True)
    command.upgrade(alembic_config, "head")
    command.downgrade(alembic_config, "base")

    engine = create_engine(database_url)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
    engine.dispose()

    assert tables == {"alembic_version"}


FLASK_MIGRATE_APP = '''
from flask_migrate import Migrate

from examples.host_app.app import create_app, db
from flask_federation.migrations import render_item

app = create_app()
Migrate(app, db, render_item=render_item)
'''

FLASK_MIGRATE_METADATA = '''def get_metadata():
    if hasattr(target_db, 'metadatas'):
        return target_db.metadatas[None]
    return target_db.metadata
'''

DOCUMENTED_METADATA = '''from flask_federation.models import metadata as federation_metadata


def get_metadata():
    return [target_db.metadata, federation_metadata]
'''


def test_flask_migrate_picks_up_federation_tables(tmp_path: Path) -> None:
    """Follow the Flask-Migrate steps of docs/federation/integration.md with the flask db commands.

    SQLite only: the Alembic tests above cover PostgreSQL, and Flask-Migrate adds
    only the wiring of render_item and the metadata, which is the same on both.
    """
    database_url = f"sqlite:///{tmp_path}/federation.db"
    (tmp_path / "migrate_app.py").write_text(FLASK_MIGRATE_APP, encoding="utf-8")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FEDERATION_")}
    environment.update(
        FLASK_APP="migrate_app:app",
        DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPOSITORY)]),
    )
    directory = str(tmp_path / "migrations")

    def flask_db(*arguments: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "flask", "db", *arguments, "--directory", directory],
            env=environment,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr

    flask_db("init")
    env_py = tmp_path / "migrations" / "env.py"
    text_before = env_py.read_text(encoding="utf-8")
    assert FLASK_MIGRATE_METADATA in text_before, "Flask-Migrate's env.py template changed; update the docs"
    env_py.write_text(text_before.replace(FLASK_MIGRATE_METADATA, DOCUMENTED_METADATA), encoding="utf-8")
    flask_db("migrate", "-m", "create host and federation tables")
    flask_db("upgrade")

    engine = create_engine(database_url)
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        drift = compare_metadata(MigrationContext.configure(connection), [db.metadata, federation_metadata])
    engine.dispose()

    assert set(federation_metadata.tables) <= tables
    assert set(db.metadata.tables) <= tables
    assert drift == []
