"""The WSGI entry point of the example host app, for gunicorn and other WSGI servers.

Serve it from the repository root with ``gunicorn examples.host_app.wsgi:app``.
The environment configures it as for ``create_app``: ``DATABASE_URL``,
``SECRET_KEY`` and any ``FEDERATION_*`` setting.
"""

from __future__ import annotations

from .app import create_app

app = create_app()
