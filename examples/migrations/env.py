"""Alembic environment of the example host app: the host's tables and the federation tables in one history.

The federation tables are declared on their own ``MetaData``, so ``target_metadata``
lists it beside the host's; autogenerate then creates and alters both.
``render_item`` writes the federation's column types as plain SQLAlchemy types, so
the generated migrations need no import of flask_federation.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from examples.host_app.app import db
from flask_federation.migrations import render_item
from flask_federation.models import metadata as federation_metadata

config = context.config

# Programs that run migrations through the Python API set configure_logger to False to keep their own logging.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = [db.metadata, federation_metadata]


def database_url() -> str:
    """Return the URL of the database to migrate: ``DATABASE_URL``, as for the app, else ``sqlalchemy.url``."""
    url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("No database to migrate: set DATABASE_URL, such as DATABASE_URL=sqlite:///app.db.")

    return url


def run_migrations_offline() -> None:
    """Print the migrations as SQL instead of running them (``alembic upgrade head --sql``)."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on a connection to the database."""
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Batch mode rebuilds a table to alter it where SQLite's ALTER TABLE cannot.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()

    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
