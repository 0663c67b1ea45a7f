"""Verifying the hash chains: find the first altered, inserted, deleted or reordered event of each chain."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuditChain, AuditEvent
from ..models.audit import GENESIS_HASH
from .chain import checkpoint_digest, event_fields, event_hash

_BATCH_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class ChainProblem:
    """The first point at which a chain fails verification."""

    chain: str
    message: str
    event_id: str | None = None
    sequence: int | None = None


@dataclasses.dataclass(frozen=True)
class ChainResult:
    chain: str
    events: int
    problem: ChainProblem | None


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    results: list[ChainResult]

    @property
    def problems(self) -> list[ChainProblem]:
        return [result.problem for result in self.results if result.problem is not None]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def events(self) -> int:
        return sum(result.events for result in self.results)


def verify_chains(session: Session, hmac_key: str | None, chains: Iterable[str] | None = None) -> VerifyReport:
    """Verify every chain (or only ``chains``), including event chains that lost their head row."""
    if chains is None:
        names = set(session.execute(select(AuditChain.chain)).scalars())
        names.update(session.execute(select(AuditEvent.chain).distinct()).scalars())
    else:
        names = set(chains)

    return VerifyReport([verify_chain(session, name, hmac_key) for name in sorted(names)])


def verify_chain(session: Session, chain: str, hmac_key: str | None) -> ChainResult:
    """Walk one chain in sequence order from its checkpoint, and stop at the first problem."""
    head = session.get(AuditChain, chain, populate_existing=True)
    if head is None:
        return ChainResult(chain, 0, ChainProblem(chain, "The chain has events but no head row: it was deleted."))

    expected_sequence = head.checkpoint_sequence + 1
    expected_prev = head.checkpoint_hash
    if head.checkpoint_sequence > 0 and head.checkpoint_digest != checkpoint_digest(
        chain, head.checkpoint_sequence, head.checkpoint_hash, hmac_key
    ):
        return ChainResult(chain, 0, ChainProblem(chain, "The purge checkpoint was altered."))

    if head.checkpoint_sequence == 0 and head.checkpoint_hash != GENESIS_HASH:
        return ChainResult(chain, 0, ChainProblem(chain, "The chain start was altered."))

    previous_id: str | None = None
    count = 0
    query = select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.sequence)
    # populate_existing: compare the rows as stored now, not copies this session loaded earlier.
    options = {"yield_per": _BATCH_SIZE, "populate_existing": True}
    with session.execute(query.execution_options(**options)) as result:
        for event in result.scalars():
            problem = _check_event(event, expected_sequence, expected_prev, previous_id, hmac_key)
            if problem is not None:
                return ChainResult(chain, count, problem)

            count += 1
            expected_sequence = event.sequence + 1
            expected_prev = event.hash
            previous_id = event.event_id

    if head.last_sequence != expected_sequence - 1 or head.last_hash != expected_prev:
        message = (
            f"The chain ends at sequence {expected_sequence - 1}, but its head records sequence "
            f"{head.last_sequence}: the last events were deleted, or the head was altered."
        )
        return ChainResult(chain, count, ChainProblem(chain, message, previous_id, expected_sequence - 1))

    return ChainResult(chain, count, None)


def _check_event(
    event: AuditEvent, expected_sequence: int, expected_prev: str, previous_id: str | None, hmac_key: str | None
) -> ChainProblem | None:
    def problem(message: str) -> ChainProblem:
        return ChainProblem(event.chain, message, event.event_id, event.sequence)

    after = f"event {previous_id}" if previous_id else "the chain start"
    if event.sequence > expected_sequence:
        missing = (
            f"sequence {expected_sequence}"
            if event.sequence == expected_sequence + 1
            else f"sequences {expected_sequence} to {event.sequence - 1}"
        )
        return problem(f"Events are missing before event {event.event_id}: {missing} after {after} were deleted.")

    if event.sequence < expected_sequence:
        return problem(f"Event {event.event_id} has sequence {event.sequence}, before the chain start: it was inserted.")

    if event.prev_hash != expected_prev:
        return problem(
            f"Event {event.event_id} does not link to {after}: an event was inserted, deleted or reordered here."
        )

    if event.hash != event_hash(event_fields(event), hmac_key):
        return problem(f"Event {event.event_id} does not match its hash: it was altered.")

    return None
