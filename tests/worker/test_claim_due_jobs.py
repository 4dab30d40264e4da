"""The worker's one-call queue read and claim, against a real Redis: what arq's poll would start."""

from __future__ import annotations

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from worker.wakeable_worker import _CLAIM_DUE_JOBS

QUEUE = "test:queue"


async def test_claims_due_jobs_in_order_up_to_the_room_and_skips_running_and_deferred(redis: Redis) -> None:
    now = timestamp_ms()
    await redis.zadd(QUEUE, {"a": now - 30, "b": now - 20, "running": now - 25, "later": now + 60_000, "c": now - 10})
    await redis.set(in_progress_key_prefix + "running", "1")
    claim = redis.register_script(_CLAIM_DUE_JOBS)

    async def claimed(room: int) -> list[str]:
        reply = await claim(keys=[QUEUE], args=[timestamp_ms(), 60_000, in_progress_key_prefix, room, 1000])
        return [raw.decode() for raw in reply[::2]]

    assert await claimed(2) == ["a", "b"]
    assert await redis.pttl(in_progress_key_prefix + "a") > 0, "claiming sets the in-progress key, as arq does"
    assert await claimed(5) == ["c"], "claimed and running jobs are skipped; a deferred one is not due"
    assert await claimed(5) == []
    assert await redis.zcard(QUEUE) == 5, "jobs stay queued until they finish (arq removes them then)"
