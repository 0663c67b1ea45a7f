"""One helper for write paths: commit on success, roll back on any exception."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session

from .state import get_state


@contextlib.contextmanager
def transaction(session: Session | None = None) -> Iterator[Session]:
    """Commit ``session`` (default: the federation session) when the block succeeds; roll back when it raises.

    Unlike ``session.begin()``, it also works when the session has already begun a
    transaction, as it does after any query. A write and the audit event that
    :func:`~flask_federation.audit.record` adds inside the block commit together,
    and a failing audit write rolls the write back.
    """
    active = session if session is not None else get_state().session
    try:
        yield active
        active.commit()
    except BaseException:
        active.rollback()
        raise
