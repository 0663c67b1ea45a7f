"""Authentication: API keys, the principal, and the auth decorators."""

from __future__ import annotations

from .decorators import with_developer_auth, with_provider_auth
from .principal import Principal, current_principal

__all__ = ["Principal", "current_principal", "with_developer_auth", "with_provider_auth"]
