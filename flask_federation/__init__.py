"""flask-federation: a partner-facing federation API for Flask apps.

Providers manage their own tenants; developers read diagnostics about their
integration. The guards that protect those routes are public, for host routes too.
"""

from __future__ import annotations

from .audit import record, with_audit
from .auth import Principal, current_principal, with_developer_auth, with_provider_auth
from .config import ConfigurationError
from .entitlements import Audience
from .errors import FederationError
from .extension import Federation
from .idempotency import with_idempotency_required
from .ratelimit import with_rate_limit
from .version import package_version

__version__ = package_version()

__all__ = [
    "Audience",
    "ConfigurationError",
    "Federation",
    "FederationError",
    "Principal",
    "__version__",
    "current_principal",
    "record",
    "with_audit",
    "with_developer_auth",
    "with_idempotency_required",
    "with_provider_auth",
    "with_rate_limit",
]
