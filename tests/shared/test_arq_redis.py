"""Every process's arq client puts jobs on the service's queue, as JSON (never a pickle)."""

from __future__ import annotations

import orjson
from arq.constants import job_key_prefix
from redis.asyncio import Redis

from shared import keys
from shared.arq_redis import arq_redis
from shared.jobs import REINDEX
from tests.conftest import SettingsFactory


async def test_a_job_lands_on_our_queue_as_json(make_settings: SettingsFactory, redis: Redis) -> None:
    client = arq_redis(make_settings(), socket_timeout=5)
    try:
        job = await client.enqueue_job(REINDEX, {"source": "/book"}, _job_id="job-1")
        assert job is not None
        assert await redis.zscore(keys.QUEUE_NAME, "job-1") is not None
        stored = await redis.get(f"{job_key_prefix}job-1")
        assert stored is not None
        payload = orjson.loads(stored)
        assert payload["f"] == REINDEX and payload["a"] == [{"source": "/book"}]
    finally:
        await client.aclose(close_connection_pool=True)
