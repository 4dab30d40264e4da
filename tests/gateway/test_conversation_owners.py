"""Whose conversation an ask continues, while the database is still being migrated at start-up."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.conversation_owners import ConversationOwners
from shared.db.database import Database
from tests.conftest import SettingsFactory
from tests.factories import a_turn_record, stored_turns


async def test_a_named_conversation_asked_during_migration_is_kept(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """An ask that arrives the instant the process started (its schema still migrating) waits for the
    schema rather than taking the conversation for someone else's and starting afresh."""
    database = Database(make_settings())
    database.start()
    try:
        assert not database.schema_ready.is_set()
        claim = await ConversationOwners(redis, database, ttl_s=60).claim("conv-1", None)
    finally:
        await database.close()
    assert (claim.conversation_id, claim.new) == ("conv-1", True)


async def test_a_known_conversation_asked_during_migration_continues(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    settings = make_settings()
    await stored_turns(settings, [a_turn_record(conversation_id="conv-2", reader_id=None)])

    database = Database(settings)  # a restart: Redis remembers nothing, the database does
    database.start()
    try:
        claim = await ConversationOwners(redis, database, ttl_s=60).claim("conv-2", None)
    finally:
        await database.close()
    assert (claim.conversation_id, claim.new) == ("conv-2", False)
