"""The hash chains: canonical encoding, digests, and appending an event under the chain's lock.

Each event's ``hash`` is SHA-256 (or HMAC-SHA256 with ``FEDERATION_AUDIT_HMAC_KEY``)
over the canonical encoding of all its fields but ``hash`` and the surrogate
``id``: JSON with sorted keys, no whitespace, and UTC timestamps with
microseconds. ``prev_hash`` is part of that encoding, so altering, deleting,
inserting or reordering an event breaks the chain from there on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import AuditChain, AuditEvent, utcnow
from ..models.audit import GENESIS_HASH

#: Every field that the hash covers, in the order export and the API list them.
HASHED_FIELDS = (
    "event_id",
    "chain",
    "sequence",
    "prev_hash",
    "occurred_at",
    "schema_version",
    "request_id",
    "actor_type",
    "actor_id",
    "actor_name",
    "credential_id",
    "auth_method",
    "action",
    "kind",
    "target_type",
    "target_id",
    "owner_id",
    "outcome",
    "http_status",
    "error_code",
    "client_address",
    "user_agent",
    "result_count",
    "changes",
)

SYSTEM_CHAIN = "system"
ANONYMOUS_CHAIN = "anonymous"


def chain_for_owner(owner_id: str | None, *, anonymous: bool = False) -> str:
    """Return the chain key of an owner (``prv_...`` or ``dev_...``), or ``anonymous``/``system`` without one."""
    if owner_id is not None and owner_id.startswith("prv_"):
        return f"provider:{owner_id}"

    if owner_id is not None and owner_id.startswith("dev_"):
        return f"developer:{owner_id}"

    return ANONYMOUS_CHAIN if anonymous else SYSTEM_CHAIN


def format_timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_encoding(fields: Mapping[str, Any]) -> bytes:
    """Return the bytes that an event's hash covers: its hashed fields as sorted-key compact JSON."""
    payload = {name: fields[name] for name in HASHED_FIELDS}
    payload["occurred_at"] = format_timestamp(payload["occurred_at"])
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def digest(data: bytes, hmac_key: str | None) -> str:
    if hmac_key is None:
        return hashlib.sha256(data).hexdigest()

    return hmac.new(hmac_key.encode(), data, hashlib.sha256).hexdigest()


def event_hash(fields: Mapping[str, Any], hmac_key: str | None) -> str:
    return digest(canonical_encoding(fields), hmac_key)


def checkpoint_digest(chain: str, sequence: int, last_hash: str, hmac_key: str | None) -> str:
    """Return the digest that binds a purge checkpoint to its chain, so it cannot be moved without the key."""
    data = json.dumps(["checkpoint", chain, sequence, last_hash], separators=(",", ":")).encode()
    return digest(data, hmac_key)


def event_fields(event: AuditEvent) -> dict[str, Any]:
    """Return the hashed fields of a stored event, as read back from the database."""
    return {name: getattr(event, name) for name in HASHED_FIELDS}


def _ensure_head(session: Session, chain: str) -> None:
    """Create the chain's head row unless it exists, without failing when another writer creates it first.

    On SQLite this write is also the first statement of the append, so the
    transaction holds SQLite's write lock before it reads the head: writers are
    serialised as with ``BEGIN IMMEDIATE``.
    """
    values = {
        "chain": chain,
        "last_sequence": 0,
        "last_hash": GENESIS_HASH,
        "checkpoint_sequence": 0,
        "checkpoint_hash": GENESIS_HASH,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(postgresql.insert(AuditChain).values(values).on_conflict_do_nothing(index_elements=["chain"]))
    elif dialect == "sqlite":
        session.execute(sqlite.insert(AuditChain).values(values).on_conflict_do_nothing(index_elements=["chain"]))
    elif session.get(AuditChain, chain) is None:
        try:
            with session.begin_nested():
                session.execute(insert(AuditChain).values(values))
        except IntegrityError:
            pass  # Another writer created it; the lock below waits for that writer.


_EVENTS = cast(Table, AuditEvent.__table__)
_CHAINS = cast(Table, AuditChain.__table__)
_ADVANCE_HEAD = (
    update(_CHAINS)
    .where(_CHAINS.c.chain == bindparam("head_chain"))
    .values(last_sequence=bindparam("head_sequence"), last_hash=bindparam("head_hash"))
)
_EVENT_COLUMNS = tuple(column.name for column in _EVENTS.columns if column.name != "id")
# Parameters are named event_<column> so that no key matches a column of the head, which
# would add that column to the head UPDATE's SET clause.
_INSERT_EVENT = insert(_EVENTS).values(
    {name: bindparam(f"event_{name}", type_=_EVENTS.c[name].type) for name in _EVENT_COLUMNS}
)
_INSERT_EVENT_ADVANCING_HEAD = _INSERT_EVENT.add_cte(_ADVANCE_HEAD.cte("advance_head"))
_LOCK_HEAD = select(_CHAINS.c.last_sequence, _CHAINS.c.last_hash).where(_CHAINS.c.chain == bindparam("head_chain")).with_for_update()


def lock_head(session: Session, chain: str) -> AuditChain:
    """Return the chain's head row, locked until the transaction ends (``SELECT ... FOR UPDATE``)."""
    _ensure_head(session, chain)
    query = select(AuditChain).where(AuditChain.chain == chain).with_for_update()
    return session.execute(query.execution_options(populate_existing=True)).scalar_one()


def _lock_head_position(session: Session, chain: str) -> tuple[int, str]:
    """Lock the chain's head until the transaction ends and return its last sequence and hash.

    Outside SQLite the locking SELECT runs first, so appending to an existing chain,
    the usual case, costs one statement here; the head is created only when it is missing.
    """
    parameters = {"head_chain": chain}
    if session.get_bind().dialect.name != "sqlite":
        row = session.execute(_LOCK_HEAD, parameters).one_or_none()
        if row is not None:
            return int(row.last_sequence), str(row.last_hash)

    _ensure_head(session, chain)
    row = session.execute(_LOCK_HEAD, parameters).one()
    return int(row.last_sequence), str(row.last_hash)


def append_event(session: Session, fields: Mapping[str, Any], hmac_key: str | None) -> dict[str, Any]:
    """Add an event at the end of its chain, without committing, and return its stored fields.

    ``fields`` are the serialised event fields plus ``chain``. This function sets
    ``occurred_at``, ``sequence``, ``prev_hash`` and ``hash`` under the chain's
    lock, so time and sequence increase together within a chain. The lock is held
    until the caller's transaction ends.

    The event and the new head are written with prebuilt Core statements: an ORM
    flush, or building the statement per call, costs more CPU than the write itself.
    On PostgreSQL they are one statement, the head update running as a CTE of the insert.
    """
    chain = str(fields["chain"])
    last_sequence, last_hash = _lock_head_position(session, chain)
    values = dict(fields)
    values.update(occurred_at=utcnow(), sequence=last_sequence + 1, prev_hash=last_hash)
    values["hash"] = event_hash(values, hmac_key)
    head_values = {"head_chain": chain, "head_sequence": values["sequence"], "head_hash": values["hash"]}
    event_values = {f"event_{name}": values[name] for name in _EVENT_COLUMNS}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_INSERT_EVENT_ADVANCING_HEAD, {**event_values, **head_values})
    else:
        session.execute(_ADVANCE_HEAD, head_values)
        session.execute(_INSERT_EVENT, event_values)

    return values


def append_chain_batch(session: Session, chain: str, batch: Sequence[Mapping[str, Any]], hmac_key: str | None) -> list[dict[str, Any]]:
    """Add several events at the end of ``chain``, in order, under one lock of its head; return their stored fields.

    Like :func:`append_event`, but the head is read and advanced once and the
    events go in one ``executemany``, so a batch costs three statements whatever its size.
    """
    last_sequence, last_hash = _lock_head_position(session, chain)
    now = utcnow()
    stored: list[dict[str, Any]] = []
    for fields in batch:
        values = dict(fields)
        values.update(occurred_at=now, sequence=last_sequence + 1, prev_hash=last_hash)
        values["hash"] = last_hash = event_hash(values, hmac_key)
        last_sequence = values["sequence"]
        stored.append(values)

    session.execute(_INSERT_EVENT, [{f"event_{name}": values[name] for name in _EVENT_COLUMNS} for values in stored])
    session.execute(_ADVANCE_HEAD, {"head_chain": chain, "head_sequence": last_sequence, "head_hash": last_hash})
    return stored


def event_to_dict(event: AuditEvent | Mapping[str, Any]) -> dict[str, Any]:
    """Return a stored event, or the fields that :func:`append_event` stored, as JSON-ready data: every hashed field, then its hash."""
    fields = event if isinstance(event, Mapping) else {**event_fields(event), "hash": event.hash}
    data = {name: fields[name] for name in HASHED_FIELDS}
    data["occurred_at"] = format_timestamp(fields["occurred_at"])
    data["hash"] = fields["hash"]
    return data
