"""Local redirect targets: the ``next`` parameter of the login routes."""

from __future__ import annotations

from urllib.parse import urlsplit

#: Longest ``next`` path accepted; longer values fall back to the default.
MAX_NEXT_LENGTH = 2048


def is_local_path(value: str) -> bool:
    """Tell whether ``value`` is a path on this site that a browser cannot read as another host.

    Accepted: printable ASCII that starts with exactly one ``/``. Rejected among
    others: ``//host`` and ``/\\host`` (browsers read both as another host),
    any backslash, absolute URLs, control characters and spaces (browsers strip
    tabs and newlines, so ``/\\t/host`` would become ``//host``), and values
    longer than :data:`MAX_NEXT_LENGTH`.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return False

    if not all("!" <= character <= "~" for character in value):
        return False

    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return False

    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def safe_next_path(value: str | None, default: str) -> str:
    """Return ``value`` when it is a local path (see :func:`is_local_path`), else ``default``."""
    if value is not None and is_local_path(value):
        return value

    return default
