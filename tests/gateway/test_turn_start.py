"""Starting a turn: the bound on pending turns and the accepted event in one step, then arq's own enqueue."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from arq import func
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import Worker
from redis.asyncio import Redis

from gateway.app import build_redis
from gateway.turns import TurnNotAccepted, TurnStarter
from shared import keys
from shared.jobs import RUN_TURN, TurnJob, job_deserializer
from shared.protocol import AskFrame, DoneEvent, ErrorCode
from shared.settings import Settings
from tests.conftest import SettingsFactory


@contextlib.asynccontextmanager
async def gateway_arq(settings: Settings) -> AsyncIterator[ArqRedis]:
    """The gateway's arq client, closed with its pool at the end."""
    arq = build_redis(settings)
    try:
        yield arq
    finally:
        await arq.aclose(close_connection_pool=True)


async def test_a_started_turn_is_a_job_arq_can_run(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(turn_timeout_s=60)
    async with gateway_arq(settings) as arq:
        accepted = await TurnStarter(arq, settings).start(AskFrame(type="ask", question="What is ROS 2?"))
        turn_id = accepted.turn_id
        ((_, fields),) = await redis.xrange(keys.turn_events(turn_id))
        assert fields[b"t"] == b"accepted"
        assert orjson.loads(fields[b"e"])["conversation_id"] == accepted.conversation_id
        assert 0 < await redis.ttl(keys.turn_events(turn_id)) <= settings.turn_events_ttl_s
        assert await redis.zscore(keys.PENDING_TURNS, turn_id) is not None
        job = Job(turn_id, arq, _queue_name=keys.QUEUE_NAME, _deserializer=job_deserializer)
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None and info.function == RUN_TURN
        assert TurnJob.model_validate(info.args[0]).question == "What is ROS 2?"


async def test_beyond_the_bound_nothing_is_written(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(max_pending_turns=2)
    async with gateway_arq(settings) as arq:
        starter = TurnStarter(arq, settings)
        for _ in range(2):
            await starter.start(AskFrame(type="ask", question="q"))
        streams_before = len(await redis.keys(keys.turn_events("*")))
        with pytest.raises(TurnNotAccepted) as refused:
            await starter.start(AskFrame(type="ask", question="q"))
        assert refused.value.error.code == ErrorCode.BUSY and refused.value.error.retry_after
        assert len(await redis.keys(keys.turn_events("*"))) == streams_before
        assert await redis.zcard(keys.QUEUE_NAME) == 2


async def test_a_turn_that_ends_frees_its_place(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(max_pending_turns=2)
    async with gateway_arq(settings) as arq:
        starter = TurnStarter(arq, settings)
        first = await starter.start(AskFrame(type="ask", question="q"))
        cancelled = await starter.start(AskFrame(type="ask", question="q"))
        await starter.events.append(first.turn_id, [DoneEvent(turn_id=first.turn_id, answer="a", provider="offline")])
        assert await starter.cancel(cancelled.turn_id)
        assert await redis.zcard(keys.PENDING_TURNS) == 0
        for _ in range(2):
            await starter.start(AskFrame(type="ask", question="q"))


async def test_a_lost_turn_lapses_from_the_bound(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(max_pending_turns=1)
    async with gateway_arq(settings) as arq:
        starter = TurnStarter(arq, settings)
        lost = await starter.start(AskFrame(type="ask", question="q"))
        await redis.zadd(keys.PENDING_TURNS, {lost.turn_id: 1})  # as if its time had run out long ago
        await starter.start(AskFrame(type="ask", question="q"))
        assert lost.turn_id.encode() not in await redis.zrange(keys.PENDING_TURNS, 0, -1)


async def test_a_turn_cancelled_before_it_starts_is_never_run(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings()
    ran: list[object] = []

    async def run_turn(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        ran.append(payload)

    async with gateway_arq(settings) as arq:
        starter = TurnStarter(arq, settings)
        accepted = await starter.start(AskFrame(type="ask", question="q"))
        assert await starter.cancel(accepted.turn_id)
        worker = Worker(
            functions=[func(run_turn, name=RUN_TURN)],
            redis_pool=arq,
            queue_name=keys.QUEUE_NAME,
            job_deserializer=job_deserializer,
            allow_abort_jobs=True,
            burst=True,
            poll_delay=0,
            handle_signals=False,
        )
        await worker.async_run()
        assert ran == [] and worker.jobs_failed == 1  # arq ends an aborted job unrun
