"""Every accepted ask has one history row with the outcome its client saw, whoever ended the turn: the worker,
a cancel (mid-answer, or before any worker took it), the gateway's timeout, or the reaper of a dead worker;
and a conversation deleted while one of its turns runs stays deleted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from fake_cohere.testing import RunningFake
from shared.history import waiting_records
from shared.protocol import ErrorCode, ErrorEvent
from shared.settings import Settings
from shared.turn_events import TurnEventWriter
from tests.conftest import SettingsFactory
from tests.stack import (
    ChatClient,
    Turn,
    chat,
    history_written,
    running_gateway,
    running_worker,
    stack_with_worker,
    worker_process,
    worker_ready,
)
from worker.app import TutorWorker
from worker.history import unrecorded

ADMIN = "admin-token-0123456789abcdef"
QUESTION = "What is a ROS 2 topic?"


async def database_ready(url: str, timeout_s: float = 60) -> None:
    """Until the gateway has migrated its database (a gateway started before any worker migrates it alone,
    and a ``hello`` waits only 5 s for that: on a loaded machine it can take longer)."""
    async with httpx.AsyncClient(base_url=url) as http, asyncio.timeout(timeout_s):
        while not (await http.get("/ready")).json()["checks"]["database"]["ok"]:  # noqa: ASYNC110 - HTTP has no event
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def reader_chat(url: str) -> AsyncIterator[tuple[ChatClient, httpx.AsyncClient]]:
    """A socket that said ``hello`` as a new reader, and a REST client carrying that reader's token."""
    await database_ready(url)
    async with chat(url) as client:
        await client.send({"type": "hello"})
        welcome = await client.receive()
        assert welcome["type"] == "welcome", welcome
        headers = {"Authorization": f"Bearer {welcome['reader_token']}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
            yield client, api


@contextlib.asynccontextmanager
async def started_worker(settings: Settings) -> AsyncIterator[TutorWorker]:
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        yield worker


async def written(worker: TutorWorker, count: int, timeout_s: float = 60) -> int:
    """Until the worker's history writer has written ``count`` records; how many it wrote."""
    await history_written(worker, count, timeout_s)
    writer = worker.state.history_writer
    assert writer is not None and writer.dropped == 0
    return writer.written


async def job_finished(worker: TutorWorker, turn_id: str) -> None:
    """Until the worker's job for the turn has returned (its record, if any, is queued by then)."""
    task = worker.arq.tasks.get(turn_id)
    if task is not None:
        await asyncio.wait({task}, timeout=30)
        assert task.done()


async def history_turns(api: httpx.AsyncClient, conversation_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/api/conversations/{conversation_id}")
    assert response.status_code == 200, response.text
    turns: list[dict[str, Any]] = response.json()["turns"]
    return turns


async def stats_by_status(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        stats: dict[str, int] = (await admin.get("/api/admin/stats")).json()["by_status"]
    return stats


async def ask_until(client: ChatClient, until: str) -> Turn:
    await client.send({"type": "ask", "question": QUESTION})
    return await client.collect(until=until)


async def test_a_turn_cancelled_mid_answer_is_kept_as_cancelled_with_what_was_shown(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=10)
    settings = cohere_settings(admin_token=ADMIN)
    async with stack_with_worker(settings) as (url, worker), reader_chat(url) as (client, api):
        turn = await ask_until(client, "delta")
        await client.send({"type": "cancel", "turn_id": turn.turn_id})
        await client.collect(turn)
        assert turn.terminal["code"] == "cancelled"
        await job_finished(worker, turn.turn_id)  # the worker's own end was refused: it records nothing
        assert await written(worker, 1) == 1 and await waiting_records(redis) == 0
        (kept,) = await history_turns(api, turn.of("accepted")[0]["conversation_id"])
        assert kept["turn_id"] == turn.turn_id and kept["status"] == "cancelled"
        assert kept["question"] == QUESTION and kept["answer"] == turn.text != ""
        assert [s["id"] for s in kept["sources"]] == [s["id"] for s in turn.of("sources")[0]["sources"]]
        assert await stats_by_status(url) == {"cancelled": 1}


async def test_a_cancel_whose_gateway_died_before_recording_it_is_recorded_by_a_worker(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unrecorded, "GRACE_S", 0.0)  # the worker's sweep, without its 30 s wait
    monkeypatch.setattr(unrecorded, "SWEEP_EVERY_S", 0.1)
    await fake_cohere.set_knobs(tokens_per_second=10)
    settings = cohere_settings(admin_token=ADMIN)
    async with stack_with_worker(settings) as (url, worker), reader_chat(url) as (client, api):
        turn = await ask_until(client, "delta")
        # the first half of the gateway's cancel (shared/ended_turns.end_turn): the gateway dies before the second
        cancel = ErrorEvent(turn_id=turn.turn_id, code=ErrorCode.CANCELLED, message="the turn was cancelled")
        assert await TurnEventWriter(redis, settings.turn_events_ttl_s).append(turn.turn_id, [cancel])
        await client.collect(turn)
        assert turn.terminal["code"] == "cancelled"
        await job_finished(worker, turn.turn_id)
        assert await written(worker, 1) == 1 and await waiting_records(redis) == 0
        (kept,) = await history_turns(api, turn.of("accepted")[0]["conversation_id"])
        assert (kept["turn_id"], kept["status"], kept["answer"]) == (turn.turn_id, "cancelled", turn.text)
        assert await stats_by_status(url) == {"cancelled": 1}


async def test_a_turn_cancelled_before_any_worker_took_it_is_kept_as_cancelled(
    cohere_settings: SettingsFactory, redis: Redis
) -> None:
    settings = cohere_settings(admin_token=ADMIN)
    async with running_gateway(settings) as url, reader_chat(url) as (client, api):
        turn = await ask_until(client, "accepted")
        await client.send({"type": "cancel", "turn_id": turn.turn_id})
        await client.collect(turn)
        assert turn.terminal["code"] == "cancelled"
        async with started_worker(settings) as worker:  # the history writer runs in the worker
            assert await written(worker, 1) == 1
            done = await client.ask(QUESTION)  # the queue has moved past the cancelled job
            assert done.terminal["type"] == "done"
            assert await written(worker, 2) == 2 and await waiting_records(redis) == 0
        conversation_id = turn.of("accepted")[0]["conversation_id"]
        (kept,) = await history_turns(api, conversation_id)
        assert kept["turn_id"] == turn.turn_id and kept["status"] == "cancelled" and kept["answer"] == ""
        assert await stats_by_status(url) == {"cancelled": 1, "done": 1}


async def test_a_turn_the_gateway_timed_out_is_kept_as_timeout(cohere_settings: SettingsFactory, redis: Redis) -> None:
    settings = cohere_settings(admin_token=ADMIN, turn_timeout_s=0.5)
    async with running_gateway(settings) as url, reader_chat(url) as (client, api):
        turn = await client.ask(QUESTION)  # no worker: the job is lost, and the gateway ends the turn
        assert turn.terminal["code"] == "timeout"
        async with started_worker(settings) as worker:
            assert await written(worker, 1) == 1 and await waiting_records(redis) == 0
        (kept,) = await history_turns(api, turn.of("accepted")[0]["conversation_id"])
        assert kept["turn_id"] == turn.turn_id and kept["status"] == "timeout"
        assert await stats_by_status(url) == {"timeout": 1}


async def test_a_turn_whose_worker_died_is_kept_as_worker_lost_with_what_was_shown(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    settings = cohere_settings(admin_token=ADMIN)
    await fake_cohere.set_knobs(tokens_per_second=10)
    async with running_gateway(settings) as url, reader_chat(url) as (client, api):
        async with worker_process(settings) as dying:
            turn = await ask_until(client, "delta")
            dying.proc.send_signal(signal.SIGKILL)
            await dying.proc.wait()
        await client.collect(turn)  # the gateway's reaper ends it
        assert turn.terminal["code"] == "worker_lost"
        async with started_worker(settings) as worker:
            assert await written(worker, 1) == 1 and await waiting_records(redis) == 0
        (kept,) = await history_turns(api, turn.of("accepted")[0]["conversation_id"])
        assert kept["turn_id"] == turn.turn_id and kept["status"] == "worker_lost"
        assert kept["answer"] == turn.text != ""
        assert await stats_by_status(url) == {"worker_lost": 1}


async def test_a_cancel_after_done_changes_nothing(cohere_settings: SettingsFactory, redis: Redis) -> None:
    settings = cohere_settings(admin_token=ADMIN)
    async with stack_with_worker(settings) as (url, worker), reader_chat(url) as (client, api):
        turn = await client.ask(QUESTION)
        assert turn.terminal["type"] == "done"
        await client.send({"type": "cancel", "turn_id": turn.turn_id})  # refused by the append script
        after = await client.ask(QUESTION)  # frames are handled in order: the cancel is through
        assert after.terminal["type"] == "done"
        assert await written(worker, 2) == 2 and await waiting_records(redis) == 0
        turns = await history_turns(api, turn.of("accepted")[0]["conversation_id"])
        assert [(t["turn_id"], t["status"]) for t in turns] == [(turn.turn_id, "done")]
        assert turns[0]["answer"] == turn.terminal["answer"]
        assert await stats_by_status(url) == {"done": 2}


async def test_a_conversation_deleted_while_a_turn_of_it_runs_stays_deleted(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    settings = cohere_settings()
    async with stack_with_worker(settings) as (url, worker), reader_chat(url) as (client, api):
        first = await client.ask(QUESTION)
        conversation_id = first.of("accepted")[0]["conversation_id"]
        await written(worker, 1)
        await fake_cohere.set_knobs(tokens_per_second=10)
        await client.send({"type": "ask", "question": "And how is it tested?", "conversation_id": conversation_id})
        running = await client.collect(until="delta")
        assert (await api.delete(f"/api/conversations/{conversation_id}")).status_code == 204
        await client.collect(running)
        assert running.terminal["type"] == "done"
        await job_finished(worker, running.turn_id)
        await written(worker, 2)  # the running turn's record reached the writer, which dropped it
        assert await waiting_records(redis) == 0
        assert (await api.get(f"/api/conversations/{conversation_id}")).status_code == 404
        assert (await api.get("/api/conversations")).json()["conversations"] == []
        await fake_cohere.set_knobs(tokens_per_second=0)
        again = await client.ask("What is a node?", conversation_id=conversation_id)
        assert again.terminal["type"] == "done"
        assert again.of("accepted")[0]["conversation_id"] != conversation_id, "a deleted conversation is not continued"
        await written(worker, 3)
        listed = (await api.get("/api/conversations")).json()["conversations"]
        assert [c["id"] for c in listed] == [again.of("accepted")[0]["conversation_id"]]


async def test_a_conversation_deleted_during_its_first_turn_stays_deleted(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    """Nothing of it is in the database yet: Redis knows whose it is, and that is enough to delete it."""
    settings = cohere_settings()
    await fake_cohere.set_knobs(tokens_per_second=10)
    async with stack_with_worker(settings) as (url, worker), reader_chat(url) as (client, api):
        running = await ask_until(client, "delta")
        conversation_id = running.of("accepted")[0]["conversation_id"]
        assert (await api.delete(f"/api/conversations/{conversation_id}")).status_code == 204
        assert (await api.delete(f"/api/conversations/{uuid.uuid4().hex}")).status_code == 404, "nobody's"
        await client.collect(running)
        assert running.terminal["type"] == "done"
        await job_finished(worker, running.turn_id)
        await written(worker, 1)
        assert await waiting_records(redis) == 0
        assert (await api.get(f"/api/conversations/{conversation_id}")).status_code == 404
        assert (await api.get("/api/conversations")).json()["conversations"] == []
