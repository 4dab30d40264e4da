"""Writing a turn's events to its Redis stream, with exactly one terminal event.

Both processes write here: the gateway writes ``accepted`` (and errors it detects itself, such as a
cancel), the worker writes everything else. One Lua script makes each append atomic with the check
"has this turn already ended?", so a late worker can never add events after a ``cancelled`` error
and two writers can never both end the same turn.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from shared import keys
from shared.protocol import TERMINAL_TYPES, _Event, event_payload

_APPEND_SCRIPT = """
-- KEYS[1] the turn's event stream, KEYS[2] its "ended" flag
-- ARGV[1] TTL in seconds, ARGV[2] most events a turn may keep, ARGV[3] the turn id,
-- ARGV[4] '1' if this append may create the stream, then (type, json) pairs
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
-- Only a turn's first event creates its stream. A stream that is gone while its turn is still being
-- answered means Redis restarted (it keeps nothing): writing on would recreate a stream with a hole in it.
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local ids = {}
local room = tonumber(ARGV[2]) - redis.call('XLEN', KEYS[1])
for i = 5, #ARGV, 2 do
  local kind = ARGV[i]
  local terminal = (kind == 'done' or kind == 'error')
  if room <= 1 and not terminal then
    -- keep the last slot for the terminal event: a turn that would exceed the limit ends in error
    kind = 'error'
    terminal = true
    ARGV[i + 1] = cjson.encode({type = 'error', turn_id = ARGV[3],
      code = 'too_large', message = 'the answer exceeded the event limit of a turn'})
  end
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 't', kind, 'e', ARGV[i + 1])
  room = room - 1
  if terminal then
    redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
    break
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return ids
"""


class TurnStreamLost(Exception):
    """The turn's stream vanished (Redis restarted): nothing more can be written for this turn."""


class TurnEventWriter:
    """Appends events to turn streams; ``append`` returns the new event ids, or None when the turn had
    already ended (the caller should stop producing)."""

    def __init__(self, redis: Redis, ttl_s: int, max_events: int = 20_000) -> None:
        self._script = redis.register_script(_APPEND_SCRIPT)
        self._ttl_s = ttl_s
        self._max_events = max_events

    async def append(self, turn_id: str, events: Sequence[_Event], *, create: bool = False) -> list[str] | None:
        """Raises ``TurnStreamLost`` if the stream should exist (``create`` is only for a turn's first event)
        and does not."""
        args: list[str | bytes | int] = [self._ttl_s, self._max_events, turn_id, "1" if create else "0"]
        for event in events:
            args.append(event.type)  # type: ignore[attr-defined]
            args.append(event_payload(event))
        result = await self._script(keys=[keys.turn_events(turn_id), keys.turn_ended(turn_id)], args=args)
        if result is None:
            return None
        if result == -1:
            raise TurnStreamLost(turn_id)
        return [r.decode() if isinstance(r, bytes) else str(r) for r in result]

    async def ended(self, turn_id: str) -> bool:
        return bool(await self._script.registered_client.exists(keys.turn_ended(turn_id)))


def is_terminal_type(kind: bytes | str) -> bool:
    return (kind.decode() if isinstance(kind, bytes) else kind) in TERMINAL_TYPES
