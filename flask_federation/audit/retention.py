"""Purging old events while keeping every chain verifiable from its first remaining event."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..models import AuditChain, AuditEvent, utcnow
from ..state import get_state
from ..transaction import transaction
from .chain import checkpoint_digest, lock_head
from .verify import ChainProblem, verify_chain
from .writer import audit_settings, record


@dataclasses.dataclass(frozen=True)
class PurgeResult:
    #: Chain key to the number of events deleted from it.
    deleted: dict[str, int]
    #: Chains left untouched because they failed verification: purging would hide the tampering.
    skipped: list[ChainProblem]

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def purge_before(session: Session, cutoff: dt.datetime, hmac_key: str | None) -> PurgeResult:
    """Delete the events that occurred before ``cutoff``, chain by chain, each in its own transaction.

    Each chain loses a prefix: every event up to the last one older than the
    cutoff, so a clock that stepped back cannot leave a hole. The chain's head
    then records the sequence and hash of the last deleted event as its
    checkpoint, which verification starts from. A chain that fails verification
    is skipped. Anything uncommitted in ``session`` is rolled back first.
    """
    deleted: dict[str, int] = {}
    skipped: list[ChainProblem] = []
    chains = list(session.execute(select(AuditChain.chain).order_by(AuditChain.chain)).scalars())
    session.rollback()
    for chain in chains:
        with transaction(session):
            count, problem = _purge_chain(session, chain, cutoff, hmac_key)

        if problem is not None:
            skipped.append(problem)
        elif count:
            deleted[chain] = count

    return PurgeResult(deleted, skipped)


def _purge_chain(
    session: Session, chain: str, cutoff: dt.datetime, hmac_key: str | None
) -> tuple[int, ChainProblem | None]:
    # Locking the head keeps writers from appending while the chain is verified and cut.
    head = lock_head(session, chain)
    last_purged = session.execute(
        select(func.max(AuditEvent.sequence)).where(AuditEvent.chain == chain, AuditEvent.occurred_at < cutoff)
    ).scalar_one()
    if last_purged is None:
        return 0, None

    problem = verify_chain(session, chain, hmac_key).problem
    if problem is not None:
        return 0, problem

    last_hash = session.execute(
        select(AuditEvent.hash).where(AuditEvent.chain == chain, AuditEvent.sequence == last_purged)
    ).scalar_one()
    result = session.execute(
        delete(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.sequence <= last_purged),
        execution_options={"synchronize_session": False},
    )
    head.checkpoint_sequence = last_purged
    head.checkpoint_hash = last_hash
    head.checkpoint_digest = checkpoint_digest(chain, last_purged, last_hash, hmac_key)
    head.purged_at = utcnow()
    return int(getattr(result, "rowcount", 0)), None


def purge(older_than_days: int | None = None, *, before: dt.datetime | None = None) -> PurgeResult:
    """Purge the events that occurred before ``before``, or more than ``older_than_days`` ago, and audit it.

    Without either, ``FEDERATION_AUDIT_RETENTION_DAYS`` gives the days; without that
    too, or with both arguments, it raises ``ValueError``. The purge itself is
    recorded as an ``audit.purge`` event on the ``system`` chain.
    """
    settings = audit_settings()
    if before is not None and older_than_days is not None:
        raise ValueError("Pass either --older-than-days or --before, not both.")

    if before is not None and before.tzinfo is None:
        raise ValueError(f"The purge time {before.isoformat()} has no timezone; add one, such as +00:00.")

    days = older_than_days if older_than_days is not None else settings.retention_days
    if before is None and (days is None or days < 1):
        raise ValueError(
            "No retention period: pass --older-than-days N (N >= 1) or set FEDERATION_AUDIT_RETENTION_DAYS."
        )

    cutoff = before if before is not None else utcnow() - dt.timedelta(days=days or 0)
    result = purge_before(get_state().session, cutoff, settings.hmac_key)
    skipped = [problem.chain for problem in result.skipped]
    with transaction():
        record(
            "audit.purge",
            kind="write",
            target_type="audit_log",
            changes={"before": cutoff, "deleted": result.deleted, "skipped": skipped},
        )

    return result
