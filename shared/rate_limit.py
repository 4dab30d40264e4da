"""A rate limiter shared by every process through Redis (GCRA, one Lua call per decision).

GCRA keeps one number per subject — the "theoretical arrival time" of the next request — so it costs one
small key, allows a configured burst, and says exactly how long to wait when it refuses. Redis's own clock
(``TIME``) is used so that several processes agree without synchronised clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys

_GCRA = """
-- KEYS[1] the subject's key; ARGV[1] ms between requests at the sustained rate; ARGV[2] burst size
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return allow_at - now
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


class RateLimiter:
    """``per_minute`` requests a minute sustained, bursts of up to ``burst``; ``per_minute <= 0`` disables it."""

    def __init__(self, redis: Redis, scope: str, per_minute: float, burst: int | None = None) -> None:
        self._script = redis.register_script(_GCRA)
        self._scope = scope
        self._enabled = per_minute > 0
        self._interval_ms = 60_000 / per_minute if self._enabled else 0.0
        self._burst = max(1, burst if burst is not None else int(per_minute // 3) or 1)

    async def check(self, subject: str) -> Decision:
        if not self._enabled:
            return Decision(True, 0.0)
        wait_ms = await self._script(
            keys=[keys.rate_limit(self._scope, subject)], args=[self._interval_ms, self._burst]
        )
        wait = float(wait_ms)
        return Decision(wait <= 0, wait / 1000)
