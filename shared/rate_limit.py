"""A rate limiter shared by every process through Redis (GCRA, one Lua call per decision).

GCRA keeps one number per subject — the "theoretical arrival time" of the next request — so it costs one
small key, allows a configured burst, and says exactly how long to wait when it refuses. Redis's own clock
(``TIME``) is used so that several processes agree without synchronised clocks.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys

_GCRA = """
-- KEYS[1] the subject's key; ARGV[1] ms per unit at the sustained rate; ARGV[2] burst (units);
-- ARGV[3] units this request costs (0: would one unit pass? nothing is counted). Returns 0 (allowed) or the ms
-- to wait before asking again.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local cost = tonumber(ARGV[3])
local new_tat = tat + interval * math.max(cost, 1)
local allow_at = new_tat - interval * tonumber(ARGV[2])
if allow_at > now then
  return math.ceil(allow_at - now)
end
if cost > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
end
return 0
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


_SLIDING_WINDOW = """
-- KEYS[1] the subject's sorted set of admitted units (score: ms); ARGV[1] window in ms; ARGV[2] most units in
-- any window; ARGV[3] units this request costs; ARGV[4] a unique id for this request's members.
-- Returns 0 (admitted) or the ms until enough units have left the window.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + cost > limit then
  local freed = redis.call('ZRANGE', KEYS[1], used + cost - limit - 1, used + cost - limit - 1, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(freed[2]) + window - now))
end
for i = 1, cost do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], window + 1000)
return 0
"""


class RateLimiter:
    """``per_minute`` requests a minute sustained, bursts of up to ``burst``; ``per_minute <= 0`` disables it."""

    def __init__(self, redis: Redis, scope: str, per_minute: float, burst: int | None = None) -> None:
        self._script = redis.register_script(_GCRA)
        self._scope = scope
        self._enabled = per_minute > 0
        self._interval_ms = 60_000 / per_minute if self._enabled else 0.0
        self._burst = max(1, burst if burst is not None else int(per_minute // 3) or 1)

    async def check(self, subject: str, cost: int = 1) -> Decision:
        if not self._enabled:
            return Decision(True, 0.0)
        cost = min(cost, self._burst)  # a request bigger than the burst could never pass otherwise
        wait_ms = await self._script(
            keys=[keys.rate_limit(self._scope, subject)], args=[self._interval_ms, self._burst, cost]
        )
        wait = float(wait_ms)
        return Decision(wait <= 0, wait / 1000)

    async def peek(self, subject: str) -> Decision:
        """Would one request pass now? Counts nothing (a failure is counted once it has happened)."""
        return await self.check(subject, cost=0)

    async def acquire(self, subject: str, cost: int = 1, *, max_wait_s: float) -> Decision:
        return await _acquire(self, subject, cost, max_wait_s)


async def _acquire(limiter: RateLimiter | WindowLimiter, subject: str, cost: int, max_wait_s: float) -> Decision:
    """Wait (up to ``max_wait_s`` in all) until the request fits; the last refusal if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_s
    while True:
        decision = await limiter.check(subject, cost)
        if decision.allowed or loop.time() + decision.retry_after_s > deadline:
            return decision
        await asyncio.sleep(decision.retry_after_s)


class WindowLimiter:
    """At most ``per_minute`` units in any 60 s: the shape of Cohere's own limits, so a burst up to the limit
    goes at once and nothing beyond it ever reaches Cohere to be refused. ``per_minute <= 0`` disables it."""

    def __init__(self, redis: Redis, scope: str, per_minute: float) -> None:
        self._script = redis.register_script(_SLIDING_WINDOW)
        self._scope = scope
        self._limit = int(per_minute)

    async def check(self, subject: str, cost: int = 1) -> Decision:
        if self._limit <= 0:
            return Decision(True, 0.0)
        cost = max(1, min(cost, self._limit))
        wait_ms = await self._script(
            keys=[keys.rate_limit(self._scope, subject)], args=[60_000, self._limit, cost, uuid.uuid4().hex]
        )
        return Decision(float(wait_ms) <= 0, float(wait_ms) / 1000)

    async def acquire(self, subject: str, cost: int = 1, *, max_wait_s: float) -> Decision:
        return await _acquire(self, subject, cost, max_wait_s)
