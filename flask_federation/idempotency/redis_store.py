"""The Redis idempotency store: one JSON string per key, expired by Redis itself."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .store import COMPLETED, IN_PROGRESS, IdempotencyRecord, OutageLog, StoredResponse, StoreUnavailable

T = TypeVar("T")

# A refused connection returns 503 at once, and a stalled server costs at most this long per call.
# Redis URL query parameters (socket_timeout, socket_connect_timeout) override these.
_DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 1.0,
    "socket_connect_timeout": 1.0,
    # No retries: the caller retries the whole request after the 503's Retry-After.
    "retry": Retry(NoBackoff(), 0),
}

# SET NX PX claims the key atomically; the script returns the holder's record when the key is taken.
_CLAIM_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
"""

# Completing and releasing compare the owner token inside Redis, so a request whose
# claim was replaced can never overwrite or delete another request's record.
_COMPLETE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local record = cjson.decode(current)
if record['owner'] ~= ARGV[1] or record['state'] ~= 'in_progress' then return 0 end
record['state'] = 'completed'
record['response'] = ARGV[2]
record['expires_at'] = tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(record), 'PX', ARGV[4])
return 1
"""

_RELEASE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local record = cjson.decode(current)
if record['owner'] ~= ARGV[1] or record['state'] ~= 'in_progress' then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


def _milliseconds(duration: dt.timedelta) -> int:
    return max(1, math.ceil(duration.total_seconds() * 1000))


def _timestamp(moment: dt.datetime) -> float:
    return moment.timestamp()


def _datetime(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def _decode(raw: bytes) -> IdempotencyRecord:
    data = json.loads(raw)
    response = None
    if data["state"] == COMPLETED:
        # The response is JSON inside the record's JSON, so that the Lua script never re-encodes it.
        stored = json.loads(data["response"])
        headers = tuple((str(name), str(value)) for name, value in stored["headers"])
        response = StoredResponse(int(stored["status"]), headers, base64.b64decode(stored["body"]))

    return IdempotencyRecord(
        data["fingerprint"],
        data["state"],
        _datetime(data["lease_expires_at"]),
        _datetime(data["expires_at"]),
        response,
    )


class RedisIdempotencyStore:
    """Keys live under ``prefix`` + lookup key, with a Redis TTL; Redis removes expired records itself."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str, lease: dt.timedelta, ttl: dt.timedelta) -> None:
        self._client = redis.Redis.from_url(url, **_DEFAULT_OPTIONS)
        self._prefix = prefix
        self._lease = lease
        self._ttl = ttl
        self._claim_script = self._client.register_script(_CLAIM_SCRIPT)
        self._complete_script = self._client.register_script(_COMPLETE_SCRIPT)
        self._release_script = self._client.register_script(_RELEASE_SCRIPT)
        self._outage = OutageLog(self.name)

    def _run(self, operation: Callable[[], T]) -> T:
        try:
            result = operation()
        except redis.RedisError as error:
            reason = f"{type(error).__name__}: {error}"
            self._outage.failed(reason)
            raise StoreUnavailable(f"The Redis idempotency store failed: {reason}") from error

        self._outage.succeeded()
        return result

    def claim(self, lookup_key: str, fingerprint: str, owner: str, now: dt.datetime) -> IdempotencyRecord | None:
        record = {
            "owner": owner,
            "fingerprint": fingerprint,
            "state": IN_PROGRESS,
            "lease_expires_at": _timestamp(now + self._lease),
            "expires_at": _timestamp(now + self._ttl),
        }
        arguments = [json.dumps(record), _milliseconds(self._ttl)]
        existing = self._run(lambda: self._claim_script(keys=[self._prefix + lookup_key], args=arguments))
        return None if existing is None else _decode(existing)

    def complete(self, lookup_key: str, owner: str, response: StoredResponse, now: dt.datetime) -> bool:
        stored = {
            "status": response.status,
            "headers": [list(header) for header in response.headers],
            "body": base64.b64encode(response.body).decode("ascii"),
        }
        arguments = [owner, json.dumps(stored), _timestamp(now + self._ttl), _milliseconds(self._ttl)]
        completed = self._run(lambda: self._complete_script(keys=[self._prefix + lookup_key], args=arguments))
        return bool(completed)

    def release(self, lookup_key: str, owner: str) -> bool:
        released = self._run(lambda: self._release_script(keys=[self._prefix + lookup_key], args=[owner]))
        return bool(released)

    def purge_expired(self, now: dt.datetime) -> int:
        # Every record carries a Redis TTL, so Redis has already deleted the expired ones.
        return 0

    def close(self) -> None:
        self._client.close()
