"""The caller's own audit events, scoped to its chain. Usable without HTTP."""

from __future__ import annotations

import datetime as dt

from ..audit.chain import chain_for_owner
from ..audit.queries import AuditFilter, AuditPage, list_page
from ..auth.principal import Principal
from ..entitlements import AUDIT_READ
from ..errors import ValidationFailed
from .access import require
from .pagination import resolve_page_size


def list_audit_events(
    principal: Principal,
    *,
    action: str | None = None,
    outcome: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> AuditPage:
    """Return one page of the events on the caller's own chain, newest first.

    A provider reads ``provider:<its id>`` and a developer ``developer:<its id>``:
    everything done with its credentials and every provisioning change to it.
    ``since`` is inclusive, ``until`` exclusive; both must be timezone-aware.
    """
    require(principal, principal.audience, AUDIT_READ)
    page_size = resolve_page_size(limit)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(details={name: ["Must include a timezone, such as +00:00 or Z."]})

    if since is not None and until is not None and since >= until:
        raise ValidationFailed(details={"until": ["Must be later than since."]})

    chain = chain_for_owner(principal.subject_id)
    filters = AuditFilter(chain=chain, action=action, outcome=outcome, since=since, until=until)
    return list_page(filters, subject=chain, limit=page_size, cursor=cursor)
