"""Starting a turn in one Redis call: what arq's enqueue writes, the accepted event, the bound, the wake-up."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gateway.app import build_redis
from gateway.turns import TurnNotAccepted, TurnStarter
from shared import keys
from shared.jobs import RUN_TURN, TurnJob, job_deserializer
from shared.protocol import AskFrame, ErrorCode
from tests.conftest import SettingsFactory


async def next_message(pubsub: PubSub) -> dict[str, Any]:
    """The next published message (``get_message`` answers None for the subscribe confirmation it skips)."""
    async with asyncio.timeout(5):
        while True:
            message = await pubsub.get_message(timeout=5)
            if message is not None:
                return message


async def test_a_started_turn_is_a_job_arq_can_run(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(turn_timeout_s=60)
    arq = build_redis(settings)
    try:
        async with redis.pubsub(ignore_subscribe_messages=True) as wake:
            await wake.subscribe(keys.WAKE_CHANNEL)
            accepted = await TurnStarter(arq, settings).start(AskFrame(type="ask", question="What is ROS 2?"))
            message = await next_message(wake)
        turn_id = accepted.turn_id
        assert message["data"] == b"job"
        ((_, fields),) = await redis.xrange(keys.turn_events(turn_id))
        assert fields[b"t"] == b"accepted"
        assert orjson.loads(fields[b"e"])["conversation_id"] == accepted.conversation_id
        assert 0 < await redis.ttl(keys.turn_events(turn_id)) <= settings.turn_events_ttl_s
        score = await redis.zscore(keys.QUEUE_NAME, turn_id)
        raw = await redis.get(job_key_prefix + turn_id)
        assert score is not None and raw is not None
        assert 59_000 < await redis.pttl(job_key_prefix + turn_id) <= 60_000, "expires with the turn's time limit"
        job = deserialize_job(raw, deserializer=job_deserializer)
        assert job.function == RUN_TURN and job.enqueue_time.timestamp() * 1000 == pytest.approx(score, abs=1)
        assert TurnJob.model_validate(job.args[0]).question == "What is ROS 2?"
    finally:
        await arq.aclose(close_connection_pool=True)


async def test_beyond_the_bound_nothing_is_written(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(max_pending_turns=2)
    arq = build_redis(settings)
    try:
        starter = TurnStarter(arq, settings)
        for _ in range(2):
            await starter.start(AskFrame(type="ask", question="q"))
        streams_before = len(await redis.keys(keys.turn_events("*")))
        with pytest.raises(TurnNotAccepted) as refused:
            await starter.start(AskFrame(type="ask", question="q"))
        assert refused.value.error.code == ErrorCode.BUSY and refused.value.error.retry_after
        assert len(await redis.keys(keys.turn_events("*"))) == streams_before
        assert await redis.zcard(keys.QUEUE_NAME) == 2
    finally:
        await arq.aclose(close_connection_pool=True)
