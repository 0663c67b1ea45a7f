"""The SQL idempotency store: the ``federation_idempotency_keys`` table in the extension's database."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Engine, Table, create_engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..database_errors import describe
from ..models import IdempotencyKey
from ..state import is_in_memory_sqlite
from .store import COMPLETED, IN_PROGRESS, IdempotencyRecord, OutageLog, StoredResponse, StoreUnavailable

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

T = TypeVar("T")

_TABLE = cast(Table, IdempotencyKey.__table__)
# A claim that loses the insert race re-reads the winner's row; if the winner released it
# in between, the claim tries again. Losing this often in a row does not happen in practice.
_CLAIM_ATTEMPTS = 3


def own_engine(app_engine: Engine) -> Engine:
    """Return an engine on the app's database with a connection pool of its own.

    Claims and results commit on their own connections, outside the handler's session
    transaction. On the app's pool, threads that each hold a session connection could
    wait for a second connection that none of them returns. ``Pool.recreate()`` keeps the
    connect arguments, size and events of the app's pool. An in-memory SQLite database
    exists only on the app's one connection, so there the store shares it, and its
    commits also commit whatever the session left uncommitted on that connection.
    """
    url = app_engine.url
    if is_in_memory_sqlite(url):
        return app_engine

    return create_engine(url, pool=app_engine.pool.recreate())


def _record(row: Any) -> IdempotencyRecord:
    response = None
    if row.state == COMPLETED:
        headers = tuple((str(name), str(value)) for name, value in row.response_headers or [])
        response = StoredResponse(row.response_status, headers, bytes(row.response_body or b""))

    return IdempotencyRecord(row.fingerprint, row.state, row.lease_expires_at, row.expires_at, response)


class SqlIdempotencyStore:
    """Claims rows under the unique ``lookup_key`` constraint; completes and releases by owner token."""

    name = "sql"

    def __init__(self, db: SQLAlchemy, *, lease: dt.timedelta, ttl: dt.timedelta) -> None:
        self._db = db
        self._lease = lease
        self._ttl = ttl
        self._engine: Engine | None = None
        self._owns_engine = False
        self._engine_lock = threading.Lock()
        self._outage = OutageLog(self.name)

    def _get_engine(self) -> Engine:
        # Built on first use, inside an app context, because db.engine needs one.
        with self._engine_lock:
            if self._engine is None:
                app_engine = self._db.engine
                self._engine = own_engine(app_engine)
                self._owns_engine = self._engine is not app_engine

            return self._engine

    def _run(self, operation: Callable[[Engine], T]) -> T:
        try:
            result = operation(self._get_engine())
        except IntegrityError:
            raise
        except SQLAlchemyError as error:
            reason = describe(error)
            self._outage.failed(reason)
            raise StoreUnavailable(f"The SQL idempotency store failed: {reason}") from error

        self._outage.succeeded()
        return result

    def claim(self, lookup_key: str, fingerprint: str, owner: str, now: dt.datetime) -> IdempotencyRecord | None:
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                self._run(lambda engine: self._insert_claim(engine, lookup_key, fingerprint, owner, now))
                return None
            except IntegrityError:
                pass

            row = self._run(lambda engine: self._select(engine, lookup_key))
            if row is None:
                continue  # Released since the insert failed: claim again.

            if row.expires_at <= now:
                # Lazy purge, only when a record blocks the claim: an expired record does not hold the key.
                self._run(lambda engine: self._execute_write(engine, self._expired(lookup_key, now)))
                continue

            return _record(row)

        raise StoreUnavailable(f"The idempotency key was claimed and released {_CLAIM_ATTEMPTS} times during one claim.")

    @staticmethod
    def _expired(lookup_key: str, now: dt.datetime) -> Any:
        return delete(_TABLE).where(_TABLE.c.lookup_key == lookup_key, _TABLE.c.expires_at <= now)

    def _insert_claim(self, engine: Engine, lookup_key: str, fingerprint: str, owner: str, now: dt.datetime) -> None:
        with engine.begin() as connection:
            connection.execute(
                insert(_TABLE).values(
                    lookup_key=lookup_key,
                    fingerprint=fingerprint,
                    owner=owner,
                    state=IN_PROGRESS,
                    created_at=now,
                    lease_expires_at=now + self._lease,
                    expires_at=now + self._ttl,
                )
            )

    @staticmethod
    def _select(engine: Engine, lookup_key: str) -> Any:
        with engine.connect() as connection:
            return connection.execute(select(_TABLE).where(_TABLE.c.lookup_key == lookup_key)).one_or_none()

    def complete(self, lookup_key: str, owner: str, response: StoredResponse, now: dt.datetime) -> bool:
        statement = (
            update(_TABLE)
            .where(_TABLE.c.lookup_key == lookup_key, _TABLE.c.owner == owner, _TABLE.c.state == IN_PROGRESS)
            .values(
                state=COMPLETED,
                response_status=response.status,
                response_headers=[list(header) for header in response.headers],
                response_body=response.body,
                expires_at=now + self._ttl,
            )
        )
        return self._run(lambda engine: self._execute_write(engine, statement)) == 1

    def release(self, lookup_key: str, owner: str) -> bool:
        statement = delete(_TABLE).where(
            _TABLE.c.lookup_key == lookup_key, _TABLE.c.owner == owner, _TABLE.c.state == IN_PROGRESS
        )
        return self._run(lambda engine: self._execute_write(engine, statement)) == 1

    def purge_expired(self, now: dt.datetime) -> int:
        statement = delete(_TABLE).where(_TABLE.c.expires_at <= now)
        return self._run(lambda engine: self._execute_write(engine, statement))

    @staticmethod
    def _execute_write(engine: Engine, statement: Any) -> int:
        with engine.begin() as connection:
            return int(connection.execute(statement).rowcount)

    def close(self) -> None:
        with self._engine_lock:
            if self._engine is not None and self._owns_engine:
                self._engine.dispose()

            self._engine = None
