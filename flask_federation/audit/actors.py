"""System actors: the CLI, the Python provisioning API and host admin tools, named on their events."""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import getpass
from collections.abc import Iterator


@dataclasses.dataclass(frozen=True)
class Actor:
    """An actor recorded on an event: ``type`` is ``provider``, ``developer``, ``system`` or ``anonymous``."""

    type: str
    id: str | None = None
    name: str | None = None


#: The actor of provisioning calls made from Python code (``flask_federation.admin``) outside a request.
PYTHON_API_ACTOR = Actor("system", "admin_api", None)

_system_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar(
    "flask_federation_system_actor", default=PYTHON_API_ACTOR
)


def current_system_actor() -> Actor:
    return _system_actor.get()


@contextlib.contextmanager
def acting_as(actor_id: str, name: str | None = None) -> Iterator[Actor]:
    """Attribute the events recorded inside the block to the system actor ``actor_id``.

    For host admin tools: ``with acting_as("staff:42", "Jane Doe"): admin.revoke_key(...)``.
    """
    actor = Actor("system", actor_id, name)
    token = _system_actor.set(actor)
    try:
        yield actor
    finally:
        _system_actor.reset(token)


def cli_actor_name() -> str | None:
    """Return the operating system user running the CLI, or None when the system cannot tell."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None
