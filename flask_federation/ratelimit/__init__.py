"""Per-principal rate limiting on Flask-Limiter and ``limits``: ``with_rate_limit`` and its component."""

from __future__ import annotations

from .decorator import with_rate_limit

__all__ = ["with_rate_limit"]
