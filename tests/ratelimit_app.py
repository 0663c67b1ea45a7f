"""A host app that gunicorn serves in the multi-process rate-limit test.

Every ``FEDERATION_*`` environment variable becomes a setting, and
``SQLALCHEMY_DATABASE_URI`` names the database that the test prepared.
"""

from __future__ import annotations

import os

from flask import Flask

from flask_federation import Federation


def create_app() -> Flask:
    app = Flask("ratelimit_gunicorn_test")
    app.config.update(
        SECRET_KEY="test-secret",
        SQLALCHEMY_DATABASE_URI=os.environ["SQLALCHEMY_DATABASE_URI"],
        FEDERATION_ENABLED=True,
    )
    app.config.update({key: value for key, value in os.environ.items() if key.startswith("FEDERATION_")})
    Federation(app)
    return app
