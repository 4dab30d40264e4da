"""The chat turn end to end over a real WebSocket: gateway → Redis/arq → worker → Redis → gateway."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from fake_cohere.testing import RunningFake
from shared import keys
from tests.conftest import SettingsFactory
from tests.stack import Turn, chat, running_stack


def stream_id(event: dict[str, Any]) -> tuple[int, int]:
    ms, seq = str(event["id"]).split("-")
    return int(ms), int(seq)


def assert_well_formed(turn: Turn, provider: str) -> None:
    """The protocol's promises about one completed turn."""
    kinds = [e["type"] for e in turn.events]
    assert kinds[0] == "accepted" and kinds[1] == "sources" and kinds[-1] == "done", kinds
    assert kinds.count("done") == 1 and "error" not in kinds
    assert all(e["turn_id"] == turn.turn_id for e in turn.events)
    ids = [stream_id(e) for e in turn.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "event ids must increase within a turn"
    done = turn.terminal
    assert done["provider"] == provider
    assert turn.text == done["answer"], "deltas must concatenate to exactly the answer"
    assert done["answer"].strip()
    sources = turn.of("sources")[0]["sources"]
    assert sources, "a book question retrieves passages"
    source_ids = {s["id"] for s in sources}
    for source in sources:
        assert set(source) == {"id", "doc", "title", "heading", "url", "snippet", "score"}
        if source["id"] != "selection":
            assert source["doc"].endswith(".md") and source["url"].startswith("/docs/")
    citations = turn.of("citation")
    assert citations, "a grounded answer cites its passages"
    for citation in citations:
        assert done["answer"][citation["start"] : citation["end"]] == citation["text"]
        assert citation["source_ids"] and set(citation["source_ids"]) <= source_ids


async def test_offline_answer_streams_with_sources_and_citations(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    async with running_stack(settings) as url, chat(url) as client:
        turn = await client.ask("What is a ROS 2 topic?")
    assert_well_formed(turn, "offline")
    docs = [s["doc"] for s in turn.of("sources")[0]["sources"]]
    assert "topic" in docs[0], f"the nodes-and-topics chapter should rank first, got {docs}"
    assert len(turn.of("delta")) > 3, "the answer arrives in pieces, not at once"


async def test_cohere_answer_streams_through_the_real_sdk(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        turn = await client.ask("How does a humanoid robot keep its balance?")
    assert_well_formed(turn, "cohere")
    stats = fake_cohere.stats()
    assert stats["requests"]["chat"] >= 1 and stats["requests"]["rerank"] >= 1
    assert stats["requests"]["embed"] >= 2, "documents were embedded at indexing, then the question"


async def test_selected_text_is_the_primary_context(make_settings: SettingsFactory) -> None:
    selection = "The zero moment point must stay inside the support polygon for the robot to remain stable."
    async with running_stack(make_settings()) as url, chat(url) as client:
        turn = await client.ask("Explain this to me", selected_text=selection)
    assert_well_formed(turn, "offline")
    sources = turn.of("sources")[0]["sources"]
    assert sources[0]["id"] == "selection" and sources[0]["snippet"] == selection


async def test_many_turns_on_one_socket_each_end_once(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        questions = ["What does a URDF describe?", "What is sim-to-real transfer?", "What is a VLA model?"]
        for question in questions:
            await client.send({"type": "ask", "question": question})
        turns: dict[str, Turn] = {}
        finished = 0
        while finished < len(questions):
            event = await client.receive()
            turns.setdefault(event["turn_id"], Turn()).events.append(event)
            finished += event["type"] in {"done", "error"}
    assert len(turns) == 3
    for turn in turns.values():
        assert_well_formed(turn, "offline")


async def test_resume_after_reconnect_replays_missed_events_once(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url:
        async with chat(url) as first:
            await first.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            seen = await first.collect(until="sources")
        # The socket is gone mid-turn; the turn goes on (within the resume grace) and its events wait.
        async with chat(url) as second:
            await second.send({"type": "resume", "turn_id": seen.turn_id, "after": seen.events[-1]["id"]})
            rest = await second.collect()
        async with chat(url) as third:
            await third.send({"type": "resume", "turn_id": seen.turn_id})
            replay = await third.collect()
    whole = Turn(seen.events + rest.events)
    assert_well_formed(whole, "offline")
    assert [e["id"] for e in replay.events] == [e["id"] for e in whole.events], "a full replay is identical"


async def test_cancel_ends_the_turn_and_stops_generation(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=20)
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
        turn = await client.collect(until="delta")
        await client.send({"type": "cancel", "turn_id": turn.turn_id})
        await client.collect(turn)
        assert turn.terminal["type"] == "error" and turn.terminal["code"] == "cancelled"
        assert "done" not in [e["type"] for e in turn.events]
        # The socket still works, and the cancelled turn's stream never gets another event.
        await fake_cohere.set_knobs(tokens_per_second=0)
        after = await client.ask("What is a VLA model?")
        assert after.terminal["type"] == "done"
    events = await redis.xrange(keys.turn_events(turn.turn_id))
    assert [f[b"t"] for _, f in events].count(b"error") == 1
    assert events[-1][1][b"t"] == b"error", "nothing was written after the terminal event"


async def test_conversation_memory_reaches_the_model(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        first = await client.ask("What is a ROS 2 topic?", conversation_id="conv-1")
        second = await client.ask("And who publishes to it?", conversation_id="conv-1")
    assert first.terminal["type"] == second.terminal["type"] == "done"
    assert second.events[0]["conversation_id"] == "conv-1"
    last_chat = fake_cohere.stats()["last_chat_request"]
    roles = [m["role"] for m in last_chat["messages"]]
    assert roles == ["system", "user", "assistant", "user"], roles
    assert await redis.llen(keys.conversation("conv-1")) == 2


async def test_a_new_conversation_gets_an_id(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        turn = await client.ask("What is physical AI?")
    assert len(turn.events[0]["conversation_id"]) == 32


BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("not json at all", "invalid_frame"),
    (b"\x00\x01binary", "invalid_frame"),
    ('{"type":"shout","question":"hi"}', "invalid_frame"),
    ('{"type":"ask"}', "invalid_frame"),
    ('{"type":"ask","question":42}', "invalid_frame"),
    ('{"type":"ask","question":"   "}', "invalid_frame"),
    ('{"type":"ask","question":"' + "x" * 3000 + '"}', "too_large"),
    ('{"type":"ask","question":"hi","conversation_id":"../../etc"}', "invalid_frame"),
    ('{"type":"resume","turn_id":"tutor:queue"}', "invalid_frame"),
    ('{"type":"cancel","turn_id":"' + "a" * 32 + '"}', "unknown_turn"),
    ('{"type":"resume","turn_id":"' + "b" * 32 + '"}', "unknown_turn"),
    ('{"type":"ask","question":"hi","extra":1}', "invalid_frame"),
    ("[1, 2, 3]", "invalid_frame"),
    ('{"type":"ask","question":"' + "y" * 70_000 + '"}', "too_large"),
]


async def test_bad_frames_get_an_error_and_the_socket_stays_usable(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings()) as url, chat(url) as client:
        for frame, code in BAD_FRAMES:
            await client.send(frame)
            error = await client.receive()
            assert error["type"] == "error" and error["code"] == code, (frame[:60], error)
            assert error["turn_id"] is None or code == "unknown_turn"
            assert "Traceback" not in error["message"]
        turn = await client.ask("What is a ROS 2 topic?")
        assert turn.terminal["type"] == "done"
