"""Guessing how many worker processes serve the app, to warn about per-process ``memory://`` counters.

A WSGI app cannot ask its server how many processes it runs, so this reads the
places where the common servers take that number from:

- ``WEB_CONCURRENCY``: gunicorn's default for ``--workers``, also set by Heroku and
  other platforms;
- ``GUNICORN_CMD_ARGS``, and the command line of a process whose
  ``SERVER_SOFTWARE`` (set by gunicorn's arbiter) starts with ``gunicorn/``:
  ``-w N``, ``-wN``, ``--workers N`` or ``--workers=N``;
- ``UWSGI_PROCESSES`` and ``UWSGI_WORKERS``: uWSGI reads each ``UWSGI_<OPTION>``
  variable as that option; inside uWSGI, ``uwsgi.numproc``.

Workers set only in a gunicorn or uWSGI config file are not seen.
"""

from __future__ import annotations

import importlib
import re
import shlex
from collections.abc import Mapping, Sequence

_WORKERS_OPTION = re.compile(r"^(?:-w|--workers=?)(\d*)$")


def _workers_from_arguments(arguments: Sequence[str]) -> int | None:
    for index, argument in enumerate(arguments):
        match = _WORKERS_OPTION.match(argument)
        if match is None:
            continue

        value = match.group(1) or (arguments[index + 1] if index + 1 < len(arguments) else "")
        if value.isdigit():
            return int(value)

    return None


def _positive_int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def detect_worker_processes(environ: Mapping[str, str], argv: Sequence[str]) -> tuple[int, str] | None:
    """Return the largest worker count found and where it was found, or ``None`` when no source sets one."""
    found: list[tuple[int, str]] = []
    for name in ("WEB_CONCURRENCY", "UWSGI_PROCESSES", "UWSGI_WORKERS"):
        count = _positive_int(environ.get(name))
        if count is not None:
            found.append((count, name))

    try:
        command_arguments = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
    except ValueError:
        command_arguments = []

    count = _workers_from_arguments(command_arguments)
    if count is not None:
        found.append((count, "GUNICORN_CMD_ARGS"))

    if environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        count = _workers_from_arguments(argv[1:])
        if count is not None:
            found.append((count, "the gunicorn command line"))

    try:
        # Importable only inside a uWSGI process.
        uwsgi = importlib.import_module("uwsgi")
        found.append((int(uwsgi.numproc), "uwsgi.numproc"))
    except (ImportError, AttributeError, TypeError, ValueError):
        pass

    return max(found, default=None)
