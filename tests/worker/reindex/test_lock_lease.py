"""The re-index lock held while a build runs: renewed, given up before the final report, and a lock another
job took is noticed."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from shared import keys
from shared.reindex import ReindexProgress, acquire_lock, release_lock, running_job
from worker.reindex.lock_lease import LockLease


async def test_the_lease_is_renewed_and_another_job_taking_the_lock_is_noticed(redis: Redis) -> None:
    assert await acquire_lock(redis, "job-a", ttl_s=2)
    lost = asyncio.Event()
    lease = LockLease(redis, "job-a", on_lost=lost.set, renew_every_s=0.01)
    lease.start()
    try:
        # the renewal shows only in Redis (the full lease again): polled, with a deadline
        async with asyncio.timeout(10):
            while await redis.ttl(keys.REINDEX_LOCK) <= 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert await release_lock(redis, "job-a") and await acquire_lock(redis, "job-b")
        await asyncio.wait_for(lost.wait(), 10)
        assert await running_job(redis) == "job-b"
    finally:
        await lease.close()
    assert await running_job(redis) == "job-b", "closing never frees another job's lock"


async def test_the_lock_is_free_before_the_final_report_is_written(redis: Redis) -> None:
    assert await acquire_lock(redis, "job-a")
    lease = LockLease(redis, "job-a")
    lease.start()
    holders: list[str | None] = []

    async def write(update: ReindexProgress) -> None:
        holders.append(await running_job(redis))

    sink = lease.released_before_the_end(write)
    progress = ReindexProgress(job_id="job-a", source="/book")
    progress.status = "running"
    await sink(progress)
    progress.status = "complete"
    await sink(progress)
    assert holders == ["job-a", None]
    await lease.close()
