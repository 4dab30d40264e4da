"""Writing finished turns on every backend: one row per turn whatever the retries, nothing refused."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from shared.db.conversations import conversation_owner, delete_conversation, get_conversation, list_conversations
from shared.db.database import Database
from shared.db.models import Turn
from shared.db.readers import delete_reader
from shared.db.turn_history import recent_exchanges, write_turns
from tests.factories import a_reader, a_turn_record


async def turn_rows(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Turn)) or 0)


async def test_a_record_written_twice_makes_one_row(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    record = a_turn_record(reader_id=reader_id)
    await write_turns(database.sessions, [record])
    await write_turns(database.sessions, [record, record])
    assert await turn_rows(database) == 1
    page = await list_conversations(database.sessions, reader_id)
    assert [(c.id, c.turns) for c in page.conversations] == [(record.conversation_id, 1)]


async def test_a_conversation_keeps_its_turns_in_order_with_what_the_client_saw(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    first = a_turn_record(reader_id=reader_id, question="What is ROS 2?", asked_at=1_000.0, finished_at=1_001.0)
    second = a_turn_record(
        reader_id=reader_id,
        conversation_id=first.conversation_id,
        question="And how is it tested?",
        status="provider_error",
        answer="",
        asked_at=1_002.0,
        finished_at=1_003.0,
    )
    await write_turns(database.sessions, [second, first])  # one batch, out of order
    found = await get_conversation(database.sessions, reader_id, first.conversation_id)
    assert found is not None
    assert found["title"] == "What is ROS 2?"
    assert [t["turn_id"] for t in found["turns"]] == [first.turn_id, second.turn_id]
    assert [t["status"] for t in found["turns"]] == ["done", "provider_error"]
    assert found["turns"][0]["sources"][0]["url"] == "/docs/intro#what-is-physical-ai"
    assert found["turns"][0]["citations"][0]["text"] == "Physical AI"
    # the model's memory takes only the answered turns
    assert await recent_exchanges(database.sessions, first.conversation_id, 6) == [("What is ROS 2?", first.answer)]


async def test_records_of_a_deleted_reader_are_dropped_not_resurrected(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    await delete_reader(database.sessions, reader_id)
    assert await write_turns(database.sessions, [a_turn_record(reader_id=reader_id)]) == 0
    assert await turn_rows(database) == 0


async def test_records_of_a_deleted_conversation_are_dropped_not_resurrected(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    first = a_turn_record(reader_id=reader_id)
    await write_turns(database.sessions, [first])
    assert await delete_conversation(database.sessions, reader_id, first.conversation_id)
    assert not await delete_conversation(database.sessions, reader_id, first.conversation_id), "gone already"
    late = a_turn_record(reader_id=reader_id, conversation_id=first.conversation_id)  # still running at deletion
    other = a_turn_record(reader_id=reader_id)
    assert await write_turns(database.sessions, [late, other]) == 1
    assert await get_conversation(database.sessions, reader_id, first.conversation_id) is None
    page = await list_conversations(database.sessions, reader_id)
    assert [(c.id, c.turns) for c in page.conversations] == [(other.conversation_id, 1)]
    assert await turn_rows(database) == 1
    owner = await conversation_owner(database.sessions, first.conversation_id)
    assert (owner.exists, owner.deleted) == (False, True)


async def test_a_conversation_not_written_yet_is_deleted_only_when_known_as_the_readers(database: Database) -> None:
    reader_id, _ = await a_reader(database)
    other_id, _ = await a_reader(database)
    theirs = a_turn_record(reader_id=other_id)
    await write_turns(database.sessions, [theirs])
    assert not await delete_conversation(database.sessions, reader_id, theirs.conversation_id, unwritten_ours=True)
    assert not await delete_conversation(database.sessions, reader_id, "nobody-knows-it")
    running = a_turn_record(reader_id=reader_id)  # its turn still runs: the database has nothing of it
    assert await delete_conversation(database.sessions, reader_id, running.conversation_id, unwritten_ours=True)
    assert await write_turns(database.sessions, [running]) == 0
    assert await get_conversation(database.sessions, reader_id, running.conversation_id) is None
    assert await get_conversation(database.sessions, other_id, theirs.conversation_id) is not None


odd_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), min_size=1, max_size=60
) | st.sampled_from(["'; DROP TABLE turns; --", "\x00", "\ud800", "Robert'); DELETE FROM readers;--", "%s %(x)s ?"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=odd_text, answer=odd_text, selected=odd_text)
async def test_any_text_is_stored_and_read_back_storable(
    database: Database, question: str, answer: str, selected: str
) -> None:
    reader_id, _ = await a_reader(database)
    record = a_turn_record(reader_id=reader_id, question=question, answer=answer, selected_text=selected)
    await write_turns(database.sessions, [record])
    found = await get_conversation(database.sessions, reader_id, record.conversation_id)
    assert found is not None
    turn = found["turns"][0]
    for sent, kept in ((question, turn["question"]), (answer, turn["answer"]), (selected, turn["selected_text"])):
        if "\x00" not in sent and not any("\ud800" <= c <= "\udfff" for c in sent):
            assert kept == sent
        else:
            assert len(kept) == len(sent) and "\x00" not in kept
