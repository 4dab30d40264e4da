"""Writing a turn's events to its Redis stream, with exactly one terminal event.

Both processes write here: the gateway writes ``accepted`` (and errors it detects itself, such as a
cancel), the worker writes everything else. One Lua script makes each append atomic with the check
"has this turn already ended?", so a late worker can never add events after a ``cancelled`` error
and two writers can never both end the same turn. The terminal event also marks the turn as waiting for its
history record (``keys.UNRECORDED_TURNS``), in the same atomic step, so no crash can end a turn unseen by
history. A worker's appends also carry its try's owner token
(``keys.turn_owner``): once the reaper has handed the turn to another worker, a first try that was only
stalled can append nothing more, so a reader never sees two answers interleaved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from redis.asyncio import Redis

from shared import keys
from shared.protocol import TERMINAL_TYPES, _Event, event_payload

_APPEND_SCRIPT = """
-- Appends to one or more turns in one call (a worker writes the deltas of all its turns together).
-- KEYS[1] the set of pending turns (a turn leaves it with its terminal event), KEYS[2] the ended turns whose
-- history record is not queued yet (a turn joins it with its terminal event), then per turn: its event
-- stream, its "ended" flag and its owner token.
-- ARGV[1] TTL in seconds, ARGV[2] most events a turn may keep; then per turn: its id, '1' if this append
-- may create the stream, the writer's owner token ('' for the gateway, whose writes need none), the number
-- of events n, then n (type, json) pairs.
-- Returns per turn: the new event ids; 0 if the turn had already ended; -1 if its stream is gone; -2 if the
-- token is not the turn's owner (the turn was handed to another worker).
local ttl, max_events = ARGV[1], tonumber(ARGV[2])
local results = {}
local a = 3
for t = 1, (#KEYS - 2) / 3 do
  local stream, ended, owner = KEYS[3 * t], KEYS[3 * t + 1], KEYS[3 * t + 2]
  local turn_id, create, token, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local first = a + 4
  a = first + 2 * n
  local holder = token ~= '' and redis.call('GET', owner)
  -- Another try's token: this one was handed on, whether or not the other has ended the turn since.
  if holder and holder ~= token then
    results[t] = -2
  elseif redis.call('EXISTS', ended) == 1 then
    results[t] = 0
  -- Only a turn's first event creates its stream. A stream that is gone while its turn is still being
  -- answered means Redis restarted (it keeps nothing): writing on would recreate a stream with a hole in it.
  elseif create ~= '1' and redis.call('EXISTS', stream) == 0 then
    results[t] = -1
  -- No token at all: the hand-over took it, and the second try has not claimed the turn yet.
  elseif token ~= '' and not holder then
    results[t] = -2
  else
    local ids = {}
    local room = max_events - redis.call('XLEN', stream)
    for i = first, a - 1, 2 do
      local kind, payload = ARGV[i], ARGV[i + 1]
      local terminal = (kind == 'done' or kind == 'error')
      if room <= 1 and not terminal then
        -- keep the last slot for the terminal event: a turn that would exceed the limit ends in error
        kind = 'error'
        terminal = true
        payload = cjson.encode({type = 'error', turn_id = turn_id,
          code = 'too_large', message = 'the answer exceeded the event limit of a turn'})
      end
      ids[#ids + 1] = redis.call('XADD', stream, '*', 't', kind, 'e', payload)
      room = room - 1
      if terminal then
        redis.call('SET', ended, '1', 'EX', ttl)
        redis.call('ZREM', KEYS[1], turn_id)
        redis.call('ZADD', KEYS[2], redis.call('TIME')[1], turn_id)
        break
      end
    end
    redis.call('EXPIRE', stream, ttl)
    results[t] = ids
  end
end
return results
"""


class TurnStreamLost(Exception):
    """The turn's stream vanished (Redis restarted): nothing more can be written for this turn."""


class TurnHandedOn(Exception):
    """The writer no longer owns the turn: the reaper gave it to another worker while this one was stalled."""


AppendOutcome = list[str] | None | TurnStreamLost | TurnHandedOn
"""Of one turn in an append: its new event ids, None if it had already ended, or why nothing was written."""


class TurnAppend(NamedTuple):
    """One turn's part of an append. ``owner``: the worker's try token (``keys.turn_owner``); None for the gateway."""

    turn_id: str
    events: Sequence[_Event]
    owner: str | None = None


class TurnEventWriter:
    """Appends events to turn streams; ``append`` returns the new event ids, or None when the turn had
    already ended (the caller should stop producing)."""

    def __init__(self, redis: Redis, ttl_s: int, max_events: int = 20_000) -> None:
        self._script = redis.register_script(_APPEND_SCRIPT)
        self._ttl_s = ttl_s
        self._max_events = max_events

    async def append(
        self, turn_id: str, events: Sequence[_Event], *, create: bool = False, owner: str | None = None
    ) -> list[str] | None:
        """Raises ``TurnStreamLost`` if the stream should exist (``create`` is only for a turn's first event)
        and does not, ``TurnHandedOn`` if ``owner`` is given and no longer owns the turn."""
        (outcome,) = await self.append_many([TurnAppend(turn_id, events, owner)], create=create)
        if isinstance(outcome, TurnStreamLost | TurnHandedOn):
            raise outcome
        return outcome

    async def append_many(self, batch: Sequence[TurnAppend], *, create: bool = False) -> list[AppendOutcome]:
        """Append to several turns in one Redis call; one outcome per turn, in order. Each turn is checked
        and written on its own: one that has ended, lost its stream or changed hands does not stop the others."""
        script_keys: list[str] = [keys.PENDING_TURNS, keys.UNRECORDED_TURNS]
        args: list[str | bytes | int] = [self._ttl_s, self._max_events]
        for turn_id, events, owner in batch:
            script_keys += [keys.turn_events(turn_id), keys.turn_ended(turn_id), keys.turn_owner(turn_id)]
            args += [turn_id, "1" if create else "0", owner or "", len(events)]
            for event in events:
                args.append(event.type)  # type: ignore[attr-defined]
                args.append(event_payload(event))
        results = await self._script(keys=script_keys, args=args)
        return [_outcome(part.turn_id, result) for part, result in zip(batch, results, strict=True)]

    async def ended(self, turn_id: str) -> bool:
        return bool(await self._script.registered_client.exists(keys.turn_ended(turn_id)))


def _outcome(turn_id: str, result: Any) -> AppendOutcome:
    if result == 0:
        return None
    if result == -1:
        return TurnStreamLost(turn_id)
    if result == -2:
        return TurnHandedOn(turn_id)
    return [r.decode() if isinstance(r, bytes) else str(r) for r in result]


def is_terminal_type(kind: bytes | str) -> bool:
    return (kind.decode() if isinstance(kind, bytes) else kind) in TERMINAL_TYPES
