"""Alembic support: render the federation's column types so that generated migrations run.

Pass :func:`render_item` to ``context.configure(render_item=...)`` in the host's
``env.py``. Without it, autogenerate (Alembic 1.20) writes two expressions that fail
with ``NameError`` when the migration runs:

- ``flask_federation.models.base.UTCDateTime()``, whose module the migration does
  not import, and which would tie old migrations to a private class;
- ``postgresql.JSONB(astext_type=Text())``, the PostgreSQL variant of the JSON
  columns, when the migration is generated against another database such as SQLite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    # Alembic is needed only where migrations run; the package does not depend on it.
    from alembic.autogenerate.api import AutogenContext

#: Alembic's default ``sqlalchemy_module_prefix``.
_DEFAULT_PREFIX = "sa."


def render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render the federation's column types as plain SQLAlchemy types; leave everything else to Alembic.

    The federation's ``TypeDecorator`` types only convert values in Python (such as
    naive UTC to timezone-aware datetimes), so the database column is that of
    their ``impl``. A ``JSONB`` with default options is rendered as
    ``postgresql.JSONB()``, with its import. Returns ``False`` for every other
    item, as Alembic expects.
    """
    if kind != "type":
        return False

    if isinstance(item, TypeDecorator) and type(item).__module__.startswith("flask_federation."):
        prefix = autogen_context.opts.get("sqlalchemy_module_prefix") or _DEFAULT_PREFIX
        return f"{prefix}{item.impl_instance!r}"

    if isinstance(item, JSONB) and not item.none_as_null and repr(item.astext_type) == "Text()":
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return "postgresql.JSONB()"

    return False
