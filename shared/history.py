"""The record of a finished turn, and the durable queue it waits in until the database has it.

The answer never waits on the database: when a turn ends, whoever ended it (the worker, or the gateway:
shared/ended_turns.py) appends a ``TurnRecord`` to a Redis stream (one XADD, after the terminal event went
out) and goes on. A writer (worker/history/writer.py) reads the
stream through a consumer group, upserts the records in batches keyed by turn id, and only then
acknowledges and deletes them. A record whose writer died stays pending in the group and another writer
claims it; one the database refused stays until the database is back. So the stream's length is exactly
the number of records waiting, which ``/ready`` shows.
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


async def enqueue_record(redis: Redis, record: TurnRecord) -> None:
    await redis.xadd(keys.HISTORY_QUEUE, {"r": record.model_dump_json()}, maxlen=MAX_WAITING, approximate=True)


async def waiting_records(redis: Redis) -> int:
    """Records not yet in the database (delivered or not)."""
    return int(await redis.xlen(keys.HISTORY_QUEUE))
