"""The history writer against a real Redis and real databases: records wait in Redis while the database is
down and are written once it is back, one row per turn whatever the retries; a dead writer's records are
claimed by another; a record the database refuses alone is dropped, not allowed to block the rest."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy import select

from shared import keys
from shared.db.database import Database
from shared.db.migrate import migrate
from shared.db.models import Turn
from shared.history import WRITERS_GROUP, TurnRecord, enqueue_record, waiting_records
from tests.conftest import SettingsFactory
from tests.factories import a_turn_record
from tests.history_queue import rows, running
from tests.postgres_servers import PostgresServer
from worker.history.writer import HistoryWriter


async def queue(redis: Redis, records: list[TurnRecord]) -> None:
    for record in records:
        await enqueue_record(redis, record)


async def test_records_are_written_once_and_leave_the_queue(redis: Redis, database: Database) -> None:
    records = [a_turn_record() for _ in range(30)]
    await queue(redis, records)
    async with running(HistoryWriter(redis, database, "w1")) as writer:
        await asyncio.wait_for(writer.wait_written(30), 30)
        await queue(redis, records[:5])  # the same turns again (a retry upstream): still one row each
        await asyncio.wait_for(writer.wait_written(35), 30)
    assert await rows(database) == {r.turn_id: 1 for r in records}
    assert await waiting_records(redis) == 0


async def test_records_wait_while_postgres_is_down_and_are_written_when_it_is_back(
    redis: Redis, make_settings: SettingsFactory, own_postgres: PostgresServer
) -> None:
    database = Database(make_settings(database_url=own_postgres.url()))
    await migrate(database.engine)
    database.schema_ready.set()
    before = [a_turn_record() for _ in range(10)]
    during = [a_turn_record() for _ in range(40)]
    try:
        async with running(HistoryWriter(redis, database, "w1")) as writer:
            await queue(redis, before)
            await asyncio.wait_for(writer.wait_written(10), 30)
            own_postgres.stop()
            await queue(redis, during)
            assert await waiting_records(redis) == 40, "they wait in Redis, nothing is lost"
            own_postgres.start()
            await asyncio.wait_for(writer.wait_written(50), 60)
        assert await rows(database) == {r.turn_id: 1 for r in before + during}
        assert await waiting_records(redis) == 0
    finally:
        await database.close()


async def test_a_dead_writers_records_are_claimed_by_another(redis: Redis, database: Database) -> None:
    records = [a_turn_record() for _ in range(12)]
    await queue(redis, records)
    # a writer that took them and died before writing or acknowledging them
    await redis.xgroup_create(keys.HISTORY_QUEUE, WRITERS_GROUP, id="0", mkstream=True)
    taken = await redis.xreadgroup(WRITERS_GROUP, "dead", {keys.HISTORY_QUEUE: ">"}, count=100)
    assert len(taken[0][1]) == 12
    async with running(HistoryWriter(redis, database, "alive", claim_idle_ms=200)) as writer:
        await asyncio.wait_for(writer.wait_written(12), 30)
    assert await rows(database) == {r.turn_id: 1 for r in records}
    assert await waiting_records(redis) == 0


async def test_a_record_written_then_claimed_again_makes_one_row(redis: Redis, database: Database) -> None:
    record = a_turn_record()
    await queue(redis, [record])
    async with running(HistoryWriter(redis, database, "first")) as first:
        await asyncio.wait_for(first.wait_written(1), 30)
    await queue(redis, [record])  # as if the first writer died after writing, before acknowledging
    async with running(HistoryWriter(redis, database, "second", claim_idle_ms=200)) as second:
        await asyncio.wait_for(second.wait_written(1), 30)
    assert await rows(database) == {record.turn_id: 1}


async def test_a_record_the_database_refuses_alone_is_dropped_and_the_rest_written(
    redis: Redis, database: Database
) -> None:
    good = [a_turn_record() for _ in range(5)]
    # a conversation id longer than its column: Postgres refuses it (SQLite stores it, and that is fine too)
    odd = a_turn_record(conversation_id="c" * 300)
    await queue(redis, [*good[:2], odd, *good[2:]])
    async with running(HistoryWriter(redis, database, "w1")) as writer:
        await asyncio.wait_for(writer.wait_written(6), 30)
    written = await rows(database)
    assert {r.turn_id for r in good} <= set(written)
    assert writer.dropped == (0 if database.backend == "sqlite" else 1)
    assert await waiting_records(redis) == 0


async def test_a_second_record_of_a_turn_never_replaces_the_first(redis: Redis, database: Database) -> None:
    """Only the party that ended a turn queues its record (shared/ended_turns.py); should another record of
    the turn ever arrive (a redelivery), the row keeps what the first one said."""
    done = a_turn_record()
    late = a_turn_record(turn_id=done.turn_id, conversation_id=done.conversation_id, status="cancelled", answer="")
    await queue(redis, [done, late])
    async with running(HistoryWriter(redis, database, "w1")) as writer:
        await asyncio.wait_for(writer.wait_written(2), 30)
    async with database.sessions() as session:
        kept = (await session.execute(select(Turn.status, Turn.answer).where(Turn.id == done.turn_id))).one()
    assert tuple(kept) == ("done", done.answer)
