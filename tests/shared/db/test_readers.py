"""Readers on every backend: tokens kept only as hashes, signed-in readers created once, an anonymous
history joining the account, deletion of everything of a reader, and the retention purge."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from sqlalchemy import func, select, update

from shared.db.conversations import delete_conversation, list_conversations, purge_idle_conversations
from shared.db.database import Database
from shared.db.feedback import save_feedback
from shared.db.models import DeletedConversation, Feedback, Reader, Turn, utc_now
from shared.db.readers import delete_reader, joined_into, reader_by_subject, reader_by_token
from shared.db.turn_history import write_turns
from shared.protocol import FeedbackFields
from tests.factories import a_reader, a_turn_record


async def count(database: Database, model: type) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_token_is_stored_only_as_its_hash(database: Database) -> None:
    reader_id, token = await a_reader(database)
    assert len(token) >= 43  # 256 random bits, url-safe
    async with database.sessions() as session:
        stored = (await session.execute(select(Reader.id, Reader.token_hash))).all()
    assert stored == [(reader_id, stored[0][1])] and token not in str(stored)
    assert await reader_by_token(database.sessions, token) == reader_id
    for wrong in ["", token[:-1], token + "x", "x" * 500, "' OR '1'='1"]:
        assert await reader_by_token(database.sessions, wrong) is None


async def test_a_signed_in_reader_is_created_once_and_their_anonymous_history_joins(database: Database) -> None:
    anonymous, _ = await a_reader(database)
    record = a_turn_record(reader_id=anonymous)
    await write_turns(database.sessions, [record])
    await save_feedback(database.sessions, anonymous, record.turn_id, FeedbackFields(rating="up"))
    subject = "https://auth.example|user-42"
    first_visits = await asyncio.gather(*(reader_by_subject(database.sessions, subject) for _ in range(5)))
    assert len(set(first_visits)) == 1, "concurrent first visits make one reader"
    account = await reader_by_subject(database.sessions, subject, joining=anonymous)
    assert account == first_visits[0]
    page = await list_conversations(database.sessions, account)
    assert [c.id for c in page.conversations] == [record.conversation_id]
    assert await save_feedback(database.sessions, account, record.turn_id, FeedbackFields(rating="down"))
    async with database.sessions() as session:
        assert await session.scalar(select(Reader.id).where(Reader.id == anonymous)) is None


async def test_a_record_of_an_anonymous_reader_that_joined_an_account_is_filed_under_it(database: Database) -> None:
    anonymous, _ = await a_reader(database)
    earlier = a_turn_record(reader_id=anonymous)
    await write_turns(database.sessions, [earlier])
    account = await reader_by_subject(database.sessions, "https://auth.example|user-7", joining=anonymous)
    # the anonymous reader's turns that were still running when it joined: one in a conversation the
    # database has, one in a conversation it has not seen yet
    late = [
        a_turn_record(reader_id=anonymous, conversation_id=earlier.conversation_id),
        a_turn_record(reader_id=anonymous),
    ]
    assert await write_turns(database.sessions, late) == 2
    page = await list_conversations(database.sessions, account)
    assert sorted((c.id, c.turns) for c in page.conversations) == sorted(
        [(earlier.conversation_id, 2), (late[1].conversation_id, 1)]
    )
    assert await joined_into(database.sessions, anonymous) == account
    await delete_reader(database.sessions, account)
    assert await joined_into(database.sessions, anonymous) is None
    assert await write_turns(database.sessions, [a_turn_record(reader_id=anonymous)]) == 0, "the account is gone"


async def test_deleting_a_reader_deletes_everything_of_theirs_only(database: Database) -> None:
    mine, _ = await a_reader(database)
    theirs, _ = await a_reader(database)
    records = [a_turn_record(reader_id=mine), a_turn_record(reader_id=theirs)]
    await write_turns(database.sessions, records)
    for reader, record in zip([mine, theirs], records, strict=True):
        await save_feedback(database.sessions, reader, record.turn_id, FeedbackFields(rating="up"))
    await delete_reader(database.sessions, mine)
    assert await count(database, Turn) == 1 and await count(database, Feedback) == 1
    assert (await list_conversations(database.sessions, theirs)).conversations


async def test_conversations_idle_past_the_retention_are_purged(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    now = time.time()
    old = a_turn_record(reader_id=reader_id, asked_at=now - 200 * 86400, finished_at=now - 200 * 86400)
    recent = a_turn_record(reader_id=reader_id)
    await write_turns(database.sessions, [old, recent])
    await save_feedback(database.sessions, reader_id, old.turn_id, FeedbackFields(rating="down"))
    assert await purge_idle_conversations(database.sessions, 180) == 1
    page = await list_conversations(database.sessions, reader_id)
    assert [c.id for c in page.conversations] == [recent.conversation_id]
    assert await count(database, Turn) == 1 and await count(database, Feedback) == 0


async def test_deleted_conversation_ids_are_kept_for_the_retention_then_purged(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    records = [a_turn_record(reader_id=reader_id) for _ in range(2)]
    await write_turns(database.sessions, records)
    for record in records:
        assert await delete_conversation(database.sessions, reader_id, record.conversation_id)
    async with database.sessions.begin() as session:
        await session.execute(
            update(DeletedConversation)
            .where(DeletedConversation.id == records[0].conversation_id)
            .values(deleted_at=utc_now() - timedelta(days=200))
        )
    await purge_idle_conversations(database.sessions, 180)
    async with database.sessions() as session:
        kept = (await session.scalars(select(DeletedConversation.id))).all()
    assert kept == [records[1].conversation_id]
