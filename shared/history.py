"""The record of a finished turn, and the durable queue it waits in until the database has it.

The answer never waits on the database: when a turn ends, whoever ended it (the worker, or the gateway:
shared/ended_turns.py) queues a ``TurnRecord`` on a Redis stream (one script call, after the terminal event
went out) and goes on. The terminal event marked the turn as unrecorded in the step that wrote it, and
queuing its record clears the mark, so a turn whose recorder was killed in between keeps its mark; a
worker's sweep records it from its stream (worker/history/unrecorded.py).

A writer (worker/history/writer.py) reads the stream through a consumer group, upserts the records in
batches keyed by turn id, and only then acknowledges and deletes them. A record whose writer died stays
pending in the group and another writer claims it; one the database refused stays until the database is
back. So the queue's length plus the marks left is the number of records waiting, which ``/ready`` shows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from shared import keys
from shared.protocol import ErrorCode, Source

# Redis keeps at most this many waiting records (a week-long database outage at a turn a second); beyond
# it the oldest go, rather than Redis running out of memory and losing everything.
MAX_WAITING = 1_000_000
WRITERS_GROUP = "writers"


class CitationRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: int
    end: int
    text: str
    source_ids: list[str]


class TurnRecord(BaseModel):
    """A turn as its client saw it, with what it cost. Times are epoch seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["turn_record"] = "turn_record"
    turn_id: str
    conversation_id: str
    reader_id: str | None
    question: str
    selected_text: str | None = None
    answer: str
    sources: list[Source] = Field(default_factory=list)
    citations: list[CitationRecord] = Field(default_factory=list)
    provider: Literal["cohere", "offline"]
    status: Literal["done"] | ErrorCode
    grounded: bool | None = None
    """From ``done``: false for "the book does not cover that" and small talk (None: the turn did not finish)."""
    first_delta_ms: float | None = None
    total_ms: float
    asked_at: float
    finished_at: float


_QUEUE_SCRIPT = """
-- KEYS[1] the history queue, KEYS[2] the ended turns whose record is not queued yet, KEYS[3] the turn's
-- "ended" flag. ARGV[1] turn id, ARGV[2] the record, ARGV[3] most records kept.
-- A turn that has ended (its flag is there) but is no longer marked has its record queued already: by its
-- recorder or by a sweep, whichever came first. Without the flag (Redis restarted and lost the turn) the
-- record is all there is of it, and is queued.
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'r', ARGV[2])
return 1
"""


async def enqueue_record(redis: Redis, record: TurnRecord) -> bool:
    """Queue ``record`` for the database unless it is queued already; whether this call queued it."""
    queue = redis.register_script(_QUEUE_SCRIPT)
    script_keys = [keys.HISTORY_QUEUE, keys.UNRECORDED_TURNS, keys.turn_ended(record.turn_id)]
    args: list[str | int] = [record.turn_id, record.model_dump_json(), MAX_WAITING]
    return bool(await queue(keys=script_keys, args=args))


async def unrecorded_since(redis: Redis, ended_before: float, limit: int) -> list[str]:
    """Turns that ended before ``ended_before`` (Redis's clock, epoch seconds) and whose record is not queued."""
    members = await redis.zrangebyscore(keys.UNRECORDED_TURNS, "-inf", ended_before, start=0, num=limit)
    return [m.decode() if isinstance(m, bytes) else str(m) for m in members]


async def forget_unrecorded(redis: Redis, turn_id: str) -> None:
    """A turn whose record can no longer be made (its stream expired): stop looking for it."""
    await redis.zrem(keys.UNRECORDED_TURNS, turn_id)


async def waiting_records(redis: Redis) -> int:
    """Records not yet in the database (queued, or of turns that have just ended)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(keys.HISTORY_QUEUE)
        pipe.zcard(keys.UNRECORDED_TURNS)
        queued, unrecorded = await pipe.execute()
    return int(queued) + int(unrecorded)
