"""Helpers for tests of the history queue: turns ended in Redis as the service ends them, what waits in the
queue, a running history writer, and the rows it wrote."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from sqlalchemy import func, select

from shared import keys
from shared.db.database import Database
from shared.db.models import Turn
from shared.history import TurnRecord
from shared.jobs import TurnJob
from shared.protocol import AcceptedEvent
from shared.turn_events import TurnEventWriter
from worker.history.writer import HistoryWriter

TTL_S = 60


async def an_accepted_turn(redis: Redis, writer: TurnEventWriter, turn_id: str, **ask: object) -> TurnJob:
    """A turn as the gateway accepts it: its ask kept beside its stream, and ``accepted`` written."""
    job = TurnJob(turn_id=turn_id, conversation_id="c1", question="What is a topic?", enqueued_at=time.time(), **ask)
    await redis.set(keys.turn_ask(turn_id), job.model_dump_json(), ex=TTL_S)
    await writer.append(turn_id, [AcceptedEvent(turn_id=turn_id, conversation_id="c1")], create=True)
    return job


async def queued_records(redis: Redis) -> list[TurnRecord]:
    return [TurnRecord.model_validate_json(f[b"r"]) for _, f in await redis.xrange(keys.HISTORY_QUEUE)]


@contextlib.asynccontextmanager
async def running(writer: HistoryWriter) -> AsyncIterator[HistoryWriter]:
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def rows(database: Database) -> dict[str, int]:
    """Rows per turn id."""
    async with database.sessions() as session:
        found = (await session.execute(select(Turn.id, func.count()).group_by(Turn.id))).all()
    return {turn_id: int(n) for turn_id, n in found}
