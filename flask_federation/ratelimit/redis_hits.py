"""Counting a hit and reading the window back in one Redis round trip.

Through its public API, ``limits`` needs two calls for what a rate-limited request
must know: ``hit`` (one script) and ``get_window_stats`` (a second script, or a
GET and a TTL for the fixed window). Each is a round trip to Redis. Here the two
scripts of the chosen strategy, taken verbatim from ``limits``' Redis storage,
run as two local functions of one script. The counters keep the keys and the
layout that ``limits`` gives them, so a host's Flask-Limiter and
``rate_limit_status`` read the same counters, and the hit and the read see the
same state because a Redis script runs atomically.

Only the Redis storages of ``limits`` (plain, Sentinel and Cluster, for Redis
and Valkey) get this path; other storages make the two calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from limits import RateLimitItem
from limits.storage import RedisStorage, Storage

# Each strategy's script runs limits' hit script as ``hit`` and its window script as
# ``window``. Each function takes its own ARGV, which shadows the script's global one.
_SLIDING_WINDOW = """
local function hit(ARGV)
{hit}
end
local function window(ARGV)
{window}
end
local acquired = hit({{ARGV[1], ARGV[2], ARGV[3]}})
return {{acquired and 1 or 0, window({{ARGV[2]}})}}
"""

_MOVING_WINDOW = """
local function hit(ARGV)
{hit}
end
local function window(ARGV)
{window}
end
local acquired = hit({{ARGV[1], ARGV[2], ARGV[3], ARGV[4]}})
return {{acquired and 1 or 0, window({{ARGV[1] - ARGV[3], ARGV[2]}}) or false}}
"""

# limits' fixed window counts every hit, allowed or not, and reads the TTL in seconds.
_FIXED_WINDOW = """
local function hit(ARGV)
{hit}
end
return {{hit({{ARGV[1], ARGV[2]}}), redis.call('ttl', KEYS[1])}}
"""


class RedisHits:
    """Hits one ``limits`` strategy's counters in Redis and returns the window, in one script call."""

    def __init__(self, storage: RedisStorage, strategy: str) -> None:
        self._storage = storage
        self._strategy = strategy
        if strategy == "sliding-window-counter":
            text = _SLIDING_WINDOW.format(
                hit=_text(storage.SCRIPT_ACQUIRE_SLIDING_WINDOW), window=_text(storage.SCRIPT_SLIDING_WINDOW)
            )
        elif strategy == "moving-window":
            text = _MOVING_WINDOW.format(
                hit=_text(storage.SCRIPT_ACQUIRE_MOVING_WINDOW), window=_text(storage.SCRIPT_MOVING_WINDOW)
            )
        else:
            text = _FIXED_WINDOW.format(hit=_text(storage.SCRIPT_INCR_EXPIRE))

        self._script = storage.get_connection().register_script(text.encode())

    def hit(self, item: RateLimitItem, identifiers: Sequence[str], cost: int) -> tuple[bool, int, float]:
        """Consume ``cost`` unless that exceeds ``item``; return (allowed, remaining, reset time as epoch seconds).

        Raises what the Redis client raises; the storage's ``base_exceptions`` name those errors.
        """
        key = item.key_for(*identifiers)
        expiry = item.get_expiry()
        now = time.time()
        if self._strategy == "sliding-window-counter":
            # limits' own key layout: "{key}" holds the current window and "{key}/-1" the previous one.
            keys = [self._storage.prefixed_key(f"{{{key}}}/-1"), self._storage.prefixed_key(f"{{{key}}}")]
            acquired, window = self._script(keys=keys, args=[item.amount, expiry, cost])
            return bool(acquired), *_sliding_window_stats(item, window, now)

        if self._strategy == "moving-window":
            acquired, window = self._script(keys=[self._storage.prefixed_key(key)], args=[now, item.amount, expiry, cost])
            start, count = (float(window[0]), int(window[1])) if window else (now, 0)
            return bool(acquired), item.amount - count, start + expiry

        count, ttl = self._script(keys=[self._storage.prefixed_key(key)], args=[expiry, cost])
        return int(count) <= item.amount, max(0, item.amount - int(count)), max(int(ttl), 0) + now


def _text(script: str | bytes) -> str:
    # limits reads its scripts as package data, which is bytes in limits 5.
    return script.decode() if isinstance(script, bytes) else script


def _sliding_window_stats(item: RateLimitItem, window: list[Any], now: float) -> tuple[int, float]:
    """Return (remaining, reset time) as ``SlidingWindowCounterRateLimiter.get_window_stats`` of limits 5 computes them."""
    previous_count = int(window[0] or 0)
    previous_expires_in = max(0, float(window[1] or 0)) / 1000
    current_count = int(window[2] or 0)
    current_expires_in = max(0, float(window[3] or 0)) / 1000
    expiry = item.get_expiry()
    weighted = previous_count * previous_expires_in / expiry + current_count
    remaining = max(0, item.amount - math.floor(weighted))
    if not (previous_count or current_count):
        return remaining, now

    previous_reset_in = previous_expires_in % (expiry / previous_count) if previous_count else math.inf
    current_reset_in = current_expires_in % expiry if current_count else math.inf
    return remaining, now + min(previous_reset_in, current_reset_in)


def build_redis_hits(storage: Storage, strategy: str) -> RedisHits | None:
    """Return the one-round-trip hit of ``strategy`` on ``storage``, or None when ``storage`` is not a Redis storage."""
    if not isinstance(storage, RedisStorage):
        return None

    return RedisHits(storage, strategy)
