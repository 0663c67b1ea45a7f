"""The host app that gunicorn serves in the multi-host and fault tests, with faults the test can inject.

``SQLALCHEMY_DATABASE_URI`` names the database the test prepared, and every
``FEDERATION_*`` environment variable becomes a setting. ``RELIABILITY_*``
variables inject faults:

* ``RELIABILITY_STATEMENT_TIMEOUT_MS``: PostgreSQL ``statement_timeout`` of every connection.
* ``RELIABILITY_CREATE_PAUSE``: ``before:<seconds>`` or ``after:<seconds>``; the first
  tenant create of the run sleeps that long before it writes, or after it committed.
* ``RELIABILITY_MARKER_DIR``: every tenant create writes a file named ``<pid>-<uuid>``
  here when it starts, so the test can count runs and find the worker to kill.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Flask

from flask_federation import Federation
from flask_federation.services import tenants


def _engine_options(database_url: str) -> dict[str, Any]:
    if not database_url.startswith("postgresql"):
        return {}

    # A refused or unreachable server fails the request in seconds instead of the OS's minutes.
    connect_args: dict[str, Any] = {"connect_timeout": 2}
    timeout = os.environ.get("RELIABILITY_STATEMENT_TIMEOUT_MS")
    if timeout:
        connect_args["options"] = f"-c statement_timeout={int(timeout)}"

    return {"connect_args": connect_args}


def _instrument_creates(marker_dir: Path, pause: str | None) -> None:
    phase, _, seconds = (pause or "").partition(":")
    original = tenants.create_tenant

    @functools.wraps(original)
    def create_tenant(*args: Any, **kwargs: Any) -> Any:
        first = not any(marker_dir.iterdir())
        (marker_dir / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
        if first and phase == "before":
            time.sleep(float(seconds))

        tenant = original(*args, **kwargs)
        if first and phase == "after":
            time.sleep(float(seconds))

        return tenant

    tenants.create_tenant = create_tenant


def create_app() -> Flask:
    database_url = os.environ["SQLALCHEMY_DATABASE_URI"]
    app = Flask("reliability_test_host")
    app.config.update(
        SECRET_KEY="test-secret",
        SQLALCHEMY_DATABASE_URI=database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(database_url),
        FEDERATION_ENABLED=True,
    )
    app.config.update({key: value for key, value in os.environ.items() if key.startswith("FEDERATION_")})
    Federation(app)
    marker_dir = os.environ.get("RELIABILITY_MARKER_DIR")
    if marker_dir:
        _instrument_creates(Path(marker_dir), os.environ.get("RELIABILITY_CREATE_PAUSE"))

    return app
