"""Conversation memory: Redis first, the database when Redis has forgotten (a restart, an expired key)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.db.database import Database
from tests.conftest import SettingsFactory
from tests.factories import a_turn_record, stored_turns
from worker.turns.conversation import ConversationMemory


async def test_memory_lost_from_redis_comes_from_the_database_even_during_migration(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    settings = make_settings()
    record = a_turn_record(conversation_id="conv-3", question="What is a topic?", answer="A named bus.")
    await stored_turns(settings, [record])

    database = Database(settings)  # a restarted worker: its schema check has only just begun
    database.start()
    try:
        memory = ConversationMemory(redis, max_turns=6, ttl_s=60, database=database)
        turns = await memory.history("conv-3")
        again = await memory.history("conv-3")  # now from Redis, which the database refilled
    finally:
        await database.close()
    assert [(t.role, t.text) for t in turns] == [("user", "What is a topic?"), ("assistant", "A named bus.")]
    assert again == turns


async def test_remembered_turns_are_the_latest_few(make_settings: SettingsFactory, redis: Redis) -> None:
    make_settings()  # flushes Redis
    memory = ConversationMemory(redis, max_turns=2, ttl_s=60)
    for n in range(3):
        await memory.remember("conv-4", f"q{n}", f"a{n}")
    turns = await memory.history("conv-4")
    assert [t.text for t in turns] == ["q1", "a1", "q2", "a2"]
    assert await memory.history("conv-4", new=True) == []
