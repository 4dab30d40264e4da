"""Readers and their history over the socket and REST, on SQLite and on Postgres behind PgBouncer: hello,
asks kept under the reader, the list, one conversation, ratings, deletion, and other readers kept out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from fake_cohere.testing import RunningFake
from gateway import ratings
from shared import keys
from shared.settings import Settings
from tests.conftest import SettingsFactory
from tests.stack import (
    ChatClient,
    chat,
    history_written,
    stack_with_worker,
)
from worker.app import TutorWorker
from worker.history import writer as history_writer

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "pgbouncer"], indirect=True)


@contextlib.asynccontextmanager
async def stack(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, TutorWorker]]:
    async with stack_with_worker(settings) as (url, worker), httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield client, worker


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def hello(client: ChatClient, **fields: Any) -> dict[str, Any]:
    await client.send({"type": "hello", **fields})
    return await client.receive()


async def test_a_readers_history_survives_in_the_database_and_only_they_see_it(
    make_settings: SettingsFactory, database_url: str | None, redis: Redis
) -> None:
    async with stack(make_settings(database_url=database_url)) as (api, worker):
        created = await api.post("/api/readers")
        assert created.status_code == 201
        token = created.json()["reader_token"]
        assert set(created.json()) == {"reader_token"} and len(token) >= 22  # >= 128 bits, url-safe
        url = str(api.base_url)
        async with chat(url) as client:
            welcome = await hello(client, reader_token=token)
            assert welcome["type"] == "welcome" and "reader_token" not in welcome
            first = await client.ask("What is ROS 2?")
            conversation_id = first.events[0]["conversation_id"]
            second = await client.ask("And what is a topic?", conversation_id=conversation_id)
            assert first.terminal["type"] == second.terminal["type"] == "done"
        await history_written(worker, 2)

        listed = (await api.get("/api/conversations", headers=bearer(token))).json()
        assert listed["next"] is None
        [item] = listed["conversations"]
        assert item["id"] == conversation_id and item["turns"] == 2 and item["title"] == "What is ROS 2?"
        opened = (await api.get(f"/api/conversations/{conversation_id}", headers=bearer(token))).json()
        assert [t["question"] for t in opened["turns"]] == ["What is ROS 2?", "And what is a topic?"]
        turn = opened["turns"][0]
        assert turn["turn_id"] == first.turn_id and turn["answer"] == first.terminal["answer"]
        assert turn["status"] == "done" and turn["provider"] == "offline" and turn["feedback"] is None
        assert turn["sources"] == first.of("sources")[0]["sources"]
        assert [c["text"] for c in turn["citations"]] == [c["text"] for c in first.of("citation")]

        # ratings: over the socket, then changed over REST
        async with chat(url) as client:
            await hello(client, reader_token=token)
            await client.send({"type": "feedback", "turn_id": first.turn_id, "rating": "down", "reason": "unclear"})
            assert await client.receive() == {"type": "feedback_saved", "turn_id": first.turn_id}
        changed = await api.put(
            f"/api/turns/{first.turn_id}/feedback", headers=bearer(token), json={"rating": "up", "comment": "clear now"}
        )
        assert changed.status_code == 200, changed.text
        opened = (await api.get(f"/api/conversations/{conversation_id}", headers=bearer(token))).json()
        assert opened["turns"][0]["feedback"] == {"rating": "up", "reason": None, "comment": "clear now"}

        # another reader: a hello without a token creates them; they see nothing of the first
        async with chat(url) as client:
            other = await hello(client)
            assert other["type"] == "welcome" and other["reader_token"] and other["reader_id"] != welcome["reader_id"]
            intruding = await client.ask("What did they ask?", conversation_id=conversation_id)
            assert intruding.terminal["type"] == "done"
            assert intruding.events[0]["conversation_id"] != conversation_id, "an ask cannot extend another's"
            await client.send({"type": "feedback", "turn_id": first.turn_id, "rating": "down"})
            refused = await client.receive()
            assert refused["type"] == "error" and refused["code"] == "unknown_turn"
        await history_written(worker, 3)
        theirs = bearer(other["reader_token"])
        assert (await api.get(f"/api/conversations/{conversation_id}", headers=theirs)).status_code == 404
        assert (await api.delete(f"/api/conversations/{conversation_id}", headers=theirs)).status_code == 404
        put = await api.put(f"/api/turns/{first.turn_id}/feedback", headers=theirs, json={"rating": "down"})
        assert put.status_code == 404 and put.json()["error"]["code"] == "not_found"
        mine = (await api.get(f"/api/conversations/{conversation_id}", headers=bearer(token))).json()
        assert len(mine["turns"]) == 2, "the other reader's ask did not extend it"
        assert [c["turns"] for c in (await api.get("/api/conversations", headers=theirs)).json()["conversations"]] == [
            1
        ]

        # deleting: one conversation, then the reader and everything of theirs
        assert (await api.delete(f"/api/conversations/{conversation_id}", headers=bearer(token))).status_code == 204
        assert (await api.get(f"/api/conversations/{conversation_id}", headers=bearer(token))).status_code == 404
        their_conversation = intruding.events[0]["conversation_id"]
        assert await redis.exists(keys.conversation(their_conversation)), "the worker remembers it in Redis"
        assert (await api.delete("/api/readers/me", headers=theirs)).status_code == 204
        gone = await api.get("/api/conversations", headers=theirs)
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "unauthorized"
        assert not await redis.exists(keys.conversation(their_conversation)), "its memory went with the reader"


async def test_bad_tokens_are_refused_and_the_socket_stays_usable(
    make_settings: SettingsFactory, database_url: str | None
) -> None:
    async with stack(make_settings(database_url=database_url)) as (api, _worker):
        async with chat(str(api.base_url)) as client:
            for token in ["not-a-token", "x" * 200, "' OR 1=1 --", "a.b.c"]:
                refused = await hello(client, reader_token=token)
                assert refused == {
                    "id": None,
                    "type": "error",
                    "turn_id": None,
                    "code": "unauthorized",
                    "message": "the reader token or id token is not valid",
                    "retry_after": None,
                }
                assert token not in str(refused)
            await client.send({"type": "feedback", "turn_id": "a" * 32, "rating": "up"})
            assert (await client.receive())["code"] == "unauthorized", "no rating without a reader"
            assert (await client.ask("What is a URDF?")).terminal["type"] == "done"
        for headers in [{}, bearer("nope"), {"Authorization": "Basic abc"}]:
            response = await api.get("/api/conversations", headers=headers)
            assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


async def test_feedback_outside_the_set_or_too_long_is_refused(
    make_settings: SettingsFactory, database_url: str | None
) -> None:
    async with stack(make_settings(database_url=database_url)) as (api, worker):
        token = (await api.post("/api/readers")).json()["reader_token"]
        async with chat(str(api.base_url)) as client:
            await hello(client, reader_token=token)
            turn = await client.ask("What is a URDF?")
            await history_written(worker, 1)
            for frame, code in [
                ({"rating": "meh"}, "invalid_frame"),
                ({"rating": "up", "reason": "boring"}, "invalid_frame"),
                ({"rating": "up", "comment": "x" * 2001}, "too_large"),
                ({"rating": "up", "extra": 1}, "invalid_frame"),
            ]:
                await client.send({"type": "feedback", "turn_id": turn.turn_id, **frame})
                refused = await client.receive()
                assert refused["type"] == "error" and refused["code"] == code, (frame, refused)
        url = f"/api/turns/{turn.turn_id}/feedback"
        assert (await api.put(url, headers=bearer(token), json={"rating": "meh"})).status_code == 422
        too_long = await api.put(url, headers=bearer(token), json={"rating": "up", "comment": "x" * 2001})
        assert too_long.status_code == 413 and "xxxx" not in too_long.text
        assert (
            await api.put(url, headers=bearer(token), json={"rating": "down", "reason": "not_in_book"})
        ).status_code == 200
        unknown = await api.put(f"/api/turns/{'c' * 32}/feedback", headers=bearer(token), json={"rating": "up"})
        assert unknown.status_code == 404


async def test_a_rating_sent_as_soon_as_the_answer_is_done_is_kept(
    make_settings: SettingsFactory, database_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_writer, "WRITE_INTERVAL_S", 6.0)  # a turn's row lands up to 6 s after it ends
    monkeypatch.setattr(ratings, "ROW_WAIT_S", 60.0)  # far more than that, however slow the machine
    async with stack(make_settings(database_url=database_url)) as (api, worker):
        token = (await api.post("/api/readers")).json()["reader_token"]
        async with chat(str(api.base_url)) as client:
            await hello(client, reader_token=token)
            first = await client.ask("What is ROS 2?")
            conversation_id = first.events[0]["conversation_id"]
            await history_written(worker, 1)  # the writer now waits before its next transaction
            second = await client.ask("And what is a topic?", conversation_id=conversation_id)
            await client.send({"type": "feedback", "turn_id": second.turn_id, "rating": "up"})
            await client.send({"type": "ask", "question": "And a service?", "conversation_id": conversation_id})
            frames: list[dict[str, Any]] = []
            while {"done", "feedback_saved"} - {f["type"] for f in frames}:
                frames.append(await client.receive(timeout=60))
            kinds = [f["type"] for f in frames]
            assert kinds.index("done") < kinds.index("feedback_saved"), "the ask is not held up by the waiting rating"
            assert frames[kinds.index("feedback_saved")] == {"type": "feedback_saved", "turn_id": second.turn_id}
            await history_written(worker, 3)
            third = await client.ask("And an action?", conversation_id=conversation_id)
            rated = await api.put(
                f"/api/turns/{third.turn_id}/feedback",
                headers=bearer(token),
                json={"rating": "down", "reason": "unclear"},
            )
            assert rated.status_code == 200, rated.text
            other = (await api.post("/api/readers")).json()["reader_token"]
            refused = await api.put(
                f"/api/turns/{first.turn_id}/feedback", headers=bearer(other), json={"rating": "up"}
            )
            assert refused.status_code == 404, "only the reader's own turns"
        kept = (await api.get(f"/api/conversations/{conversation_id}", headers=bearer(token))).json()["turns"]
        assert [t["feedback"] and t["feedback"]["rating"] for t in kept] == [None, "up", None, "down"]


async def test_the_list_pages_newest_first(make_settings: SettingsFactory, database_url: str | None) -> None:
    async with stack(make_settings(database_url=database_url)) as (api, worker):
        token = (await api.post("/api/readers")).json()["reader_token"]
        async with chat(str(api.base_url)) as client:
            await hello(client, reader_token=token)
            asked = [(await client.ask(f"Question {n} about ROS 2?")).events[0]["conversation_id"] for n in range(23)]
        await history_written(worker, 23)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"cursor": cursor} if cursor else {}
            page = (await api.get("/api/conversations", headers=bearer(token), params=params)).json()
            seen += [c["id"] for c in page["conversations"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == list(reversed(asked))
        bad = await api.get("/api/conversations", headers=bearer(token), params={"cursor": "'; DROP TABLE turns"})
        assert bad.status_code == 422


async def test_memory_comes_from_the_database_when_redis_forgot(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, database_url: str | None
) -> None:
    async with stack(cohere_settings(database_url=database_url)) as (api, worker), chat(str(api.base_url)) as client:
        await hello(client)
        first = await client.ask("What is a ROS 2 topic?")
        conversation_id = first.events[0]["conversation_id"]
        await history_written(worker, 1)
        await redis.delete(keys.conversation(conversation_id))  # expired, or Redis restarted
        second = await client.ask("And who publishes to it?", conversation_id=conversation_id)
    assert second.terminal["type"] == "done" and second.events[0]["conversation_id"] == conversation_id
    messages = fake_cohere.stats()["last_chat_request"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "ROS 2 topic" in str(messages[1]["content"])


async def test_history_survives_a_restart_of_the_whole_service(
    make_settings: SettingsFactory, database_url: str | None, redis: Redis
) -> None:
    """What every deploy and every wake of a sleeping Space does: all processes restart, and Redis (which
    keeps no files) comes back empty. The same DATA_DIR (SQLite) or DATABASE_URL keeps the history."""
    settings = make_settings(database_url=database_url)
    async with stack(settings) as (api, worker):
        token = (await api.post("/api/readers")).json()["reader_token"]
        async with chat(str(api.base_url)) as client:
            await hello(client, reader_token=token)
            first = await client.ask("What is ROS 2?")
        await history_written(worker, 1)
    await redis.flushall()
    async with stack(settings) as (api, _worker):
        listed = (await api.get("/api/conversations", headers=bearer(token))).json()
        assert [c["id"] for c in listed["conversations"]] == [first.events[0]["conversation_id"]]
        async with chat(str(api.base_url)) as client:
            await hello(client, reader_token=token)
            again = await client.ask("And what is a node?", conversation_id=first.events[0]["conversation_id"])
            assert again.events[0]["conversation_id"] == first.events[0]["conversation_id"], "still theirs"
