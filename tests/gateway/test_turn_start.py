"""Starting a turn in one Redis call: what arq's enqueue writes, the accepted event, the bound, the intake."""

from __future__ import annotations

import orjson
import pytest
from arq.constants import job_key_prefix
from arq.jobs import deserialize_job
from redis.asyncio import Redis

from gateway.app import build_redis
from gateway.turns import TurnNotAccepted, TurnStarter
from shared import keys
from shared.jobs import RUN_TURN, TurnJob, job_deserializer
from shared.protocol import AskFrame, ErrorCode
from tests.conftest import SettingsFactory


async def test_a_started_turn_is_a_job_arq_can_run(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(turn_timeout_s=60)
    arq = build_redis(settings)
    try:
        accepted = await TurnStarter(arq, settings).start(AskFrame(type="ask", question="What is ROS 2?"))
        turn_id = accepted.turn_id
        assert await redis.lrange(keys.TURN_INTAKE, 0, -1) == [turn_id.encode()], "offered to a waiting worker"
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
        assert await redis.llen(keys.TURN_INTAKE) == 2
    finally:
        await arq.aclose(close_connection_pool=True)
