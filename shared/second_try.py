"""A turn started again on another worker because the one answering it died before its first delta.

The gateway's reaper (gateway/reaper.py) sees the dead worker's heartbeat expire, finds no delta in the turn's
stream, marks the turn ``retried`` and frees arq's in-progress key; arq's next poll on a live worker runs the job
again as its second try. The reader sees a later answer instead of ``worker_lost``. What the first try already
sent (``accepted``, perhaps ``sources``) stays: the second try does not send ``sources`` again. Handing on also
takes the turn from the first try (``keys.turn_owner``): if that try was only stalled, none of its writes is
accepted any more.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys

# A turn's first events: accepted, sources, then the deltas and citations; a glance at this many is enough.
FIRST_EVENTS = 8
# The mark outlives any turn (TURN_TIMEOUT_S ends them within minutes).
RETRIED_MARK_TTL_S = 86_400


@dataclass(frozen=True)
class EarlierTry:
    """What the turn's stream holds from its first try."""

    sent_sources: bool
    sent_answer: bool  # a delta, or the turn's end: starting again would repeat or contradict it


async def earlier_try(redis: Redis, turn_id: str) -> EarlierTry:
    entries = await redis.xrange(keys.turn_events(turn_id), count=FIRST_EVENTS)
    kinds = {fields[b"t"] for _, fields in entries}
    answered = bool(kinds & {b"delta", b"citation", b"done", b"error"}) or len(entries) >= FIRST_EVENTS
    return EarlierTry(sent_sources=b"sources" in kinds, sent_answer=answered)
