"""A turn ended from outside its worker: only the call that ended it queues its record, read from the turn's
stream as its client saw it (real Redis)."""

from __future__ import annotations

from redis.asyncio import Redis

from shared import keys
from shared.ended_turns import end_turn, record_from_stream
from shared.protocol import (
    CitationEvent,
    DeltaEvent,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    SourcesEvent,
)
from shared.turn_events import TurnEventWriter
from tests.factories import a_source
from tests.history_queue import TTL_S, an_accepted_turn, queued_records


def cancelled(turn_id: str) -> ErrorEvent:
    return ErrorEvent(turn_id=turn_id, code=ErrorCode.CANCELLED, message="the turn was cancelled")


async def test_the_call_that_ends_a_turn_queues_what_its_client_saw(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    job = await an_accepted_turn(redis, writer, "t1", reader_id="r1", selected_text="a passage")
    citation = CitationEvent(turn_id="t1", start=0, end=5, text="A top", source_ids=["s1"])
    await writer.append(
        "t1",
        [
            SourcesEvent(turn_id="t1", sources=[a_source()]),
            DeltaEvent(turn_id="t1", text="A top"),
            citation,
            DeltaEvent(turn_id="t1", text="ic is"),
        ],
    )
    assert await end_turn(redis, writer, cancelled("t1"), "cohere")
    assert not await end_turn(redis, writer, cancelled("t1"), "cohere"), "a turn ends once"
    await writer.append("t1", [DeltaEvent(turn_id="t1", text=" late")])  # refused: not in what the client saw
    (record,) = await queued_records(redis)
    assert (record.turn_id, record.conversation_id, record.reader_id) == ("t1", "c1", "r1")
    assert (record.question, record.selected_text) == (job.question, "a passage")
    assert (record.answer, record.status, record.provider, record.grounded) == (
        "A topic is",
        "cancelled",
        "cohere",
        None,
    )
    assert record.sources == [a_source()] and [c.text for c in record.citations] == ["A top"]
    assert record.first_delta_ms is not None and record.first_delta_ms <= record.total_ms
    assert record.asked_at == job.enqueued_at <= record.finished_at


async def test_a_turn_without_a_delta_or_whose_ask_is_gone(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    await an_accepted_turn(redis, writer, "t2")
    assert await record_from_stream(redis, "t2", "offline") is None, "not ended: not ours to record"
    assert await end_turn(redis, writer, cancelled("t2"), "offline")
    (record,) = await queued_records(redis)
    assert (record.answer, record.first_delta_ms, record.sources, record.status) == ("", None, [], "cancelled")
    await redis.delete(keys.turn_ask("t2"))
    assert await record_from_stream(redis, "t2", "offline") is None


async def test_a_done_read_back_keeps_its_answer_provider_and_grounding(redis: Redis) -> None:
    writer = TurnEventWriter(redis, TTL_S)
    await an_accepted_turn(redis, writer, "t3")
    await writer.append(
        "t3",
        [
            DeltaEvent(turn_id="t3", text="Not in the book."),
            DoneEvent(turn_id="t3", answer="Not in the book.", provider="offline", grounded=False),
        ],
    )
    record = await record_from_stream(redis, "t3", "cohere")
    assert record is not None
    assert (record.status, record.answer, record.provider, record.grounded) == (
        "done",
        "Not in the book.",
        "offline",
        False,
    )
