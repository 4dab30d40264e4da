"""A turn whose recorder was killed between its terminal event and its history record still gets its row:
the terminal event marks it unrecorded in the same script, and a worker's sweep records it from its stream
after a grace period. A recorder that is only slow and the sweep never both queue it (real Redis and
databases)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from shared import keys
from shared.db.database import Database
from shared.history import TurnRecord, enqueue_record, waiting_records
from shared.jobs import TurnJob
from shared.protocol import DeltaEvent, DoneEvent
from shared.turn_events import TurnEventWriter
from tests.factories import a_turn_record
from tests.history_queue import TTL_S, an_accepted_turn, queued_records, rows, running
from worker.history.unrecorded import record_unrecorded
from worker.history.writer import HistoryWriter


async def a_done_turn(redis: Redis, writer: TurnEventWriter, turn_id: str) -> TurnJob:
    """A turn the worker answered and ended; its record is not queued (as if the worker died right then)."""
    job = await an_accepted_turn(redis, writer, turn_id)
    await writer.append(
        turn_id,
        [
            DeltaEvent(turn_id=turn_id, text="A topic is a channel."),
            DoneEvent(turn_id=turn_id, answer="A topic is a channel.", provider="cohere", grounded=True),
        ],
    )
    return job


def recorded_by_its_worker(job: TurnJob) -> TurnRecord:
    return a_turn_record(turn_id=job.turn_id, conversation_id=job.conversation_id, question=job.question)


async def test_a_turn_whose_recorder_died_is_recorded_by_the_sweep(redis: Redis, database: Database) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    job = await a_done_turn(redis, writer, "t1")
    assert await waiting_records(redis) == 1, "/ready counts it among the records that wait"
    assert await record_unrecorded(redis, "offline", grace_s=30) == 0, "within the grace: its recorder may be slow"
    assert await record_unrecorded(redis, "offline", grace_s=0) == 1
    assert await record_unrecorded(redis, "offline", grace_s=0) == 0, "recorded once"
    (record,) = await queued_records(redis)
    assert (record.turn_id, record.status, record.answer, record.provider) == (
        "t1",
        "done",
        "A topic is a channel.",
        "cohere",
    )
    assert record.question == job.question and record.grounded is True
    async with running(HistoryWriter(redis, database, "w1")) as history:
        await asyncio.wait_for(history.wait_written(1), 30)
    assert await rows(database) == {"t1": 1}
    assert await waiting_records(redis) == 0


async def test_a_slow_recorder_and_the_sweep_queue_one_record(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    late = await a_done_turn(redis, writer, "late")
    assert await record_unrecorded(redis, "offline", grace_s=0) == 1
    assert not await enqueue_record(redis, recorded_by_its_worker(late)), "the sweep has queued it"
    prompt = await a_done_turn(redis, writer, "prompt")
    assert await enqueue_record(redis, recorded_by_its_worker(prompt))
    assert await record_unrecorded(redis, "offline", grace_s=0) == 0, "its recorder has queued it"
    assert sorted(r.turn_id for r in await queued_records(redis)) == ["late", "prompt"]
    assert await waiting_records(redis) == 2


async def test_workers_sweeping_at_once_queue_each_turn_once(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    for n in range(20):
        await a_done_turn(redis, writer, f"t{n}")
    counts = await asyncio.gather(*(record_unrecorded(redis, "offline", grace_s=0) for _ in range(3)))
    assert sum(counts) == 20
    assert sorted(r.turn_id for r in await queued_records(redis)) == sorted(f"t{n}" for n in range(20))


async def test_a_mark_whose_turn_is_gone_is_dropped(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    await a_done_turn(redis, writer, "expired")
    await redis.delete(keys.turn_ask("expired"))  # its ask's TTL ran out before any sweep
    assert await record_unrecorded(redis, "offline", grace_s=0) == 0
    assert await queued_records(redis) == [] and await waiting_records(redis) == 0


async def test_a_turn_redis_lost_is_still_queued_by_its_recorder(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    job = await a_done_turn(redis, writer, "lost")
    await redis.flushall()  # Redis restarted between the terminal event and the record: no mark, no flag
    assert await enqueue_record(redis, recorded_by_its_worker(job)), "the record is all there is of the turn"
    assert [r.turn_id for r in await queued_records(redis)] == ["lost"]
