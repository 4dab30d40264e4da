"""The re-index job in a real worker: the lock, the progress report, first-start indexing and the schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis

from shared import keys
from shared.arq_redis import arq_redis
from shared.reindex import (
    ReindexAlreadyRunning,
    ReindexProgress,
    acquire_lock,
    read_progress,
    release_lock,
    renew_lock,
    request_reindex,
    running_job,
)
from tests.conftest import SettingsFactory
from tests.factories import SAMPLE_BOOK
from tests.stack import running_worker, worker_ready

FINISH_TIMEOUT_S = 60.0


@pytest.fixture
async def arq(make_settings: SettingsFactory) -> AsyncIterator[ArqRedis]:
    """arq's client on the test Redis (flushed by the ``redis`` fixture), as every process builds it."""
    client = arq_redis(make_settings())
    yield client
    await client.flushall()  # leave no lock or queued re-index behind for tests that do not flush
    await client.aclose(close_connection_pool=True)


async def finished(redis: Redis, job_id: str) -> ReindexProgress:
    """The job's final report (progress lives in a Redis key: read it until the job ends, bounded)."""
    deadline = time.monotonic() + FINISH_TIMEOUT_S
    while time.monotonic() < deadline:
        progress = await read_progress(redis, job_id)
        if progress is not None and progress.finished:
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"re-index {job_id} did not finish: {await read_progress(redis, job_id)}")


async def test_the_lock_admits_one_holder_at_a_time(redis: Redis) -> None:
    assert await acquire_lock(redis, "job-a")
    assert not await acquire_lock(redis, "job-b")
    assert await running_job(redis) == "job-a"
    assert not await renew_lock(redis, "job-b") and not await release_lock(redis, "job-b")
    assert await renew_lock(redis, "job-a")
    assert await release_lock(redis, "job-a")
    assert await running_job(redis) is None and await acquire_lock(redis, "job-b")


async def test_requests_queue_one_job_and_refuse_a_second(arq: ArqRedis) -> None:
    first = await request_reindex(arq, source="/book", mode="full", trigger="api")
    assert first.status == "queued" and await running_job(arq) == first.job_id
    assert await arq.get(keys.REINDEX_LATEST) == first.job_id.encode()
    with pytest.raises(ReindexAlreadyRunning) as refused:
        await request_reindex(arq, source="/book", mode="incremental", trigger="cli")
    assert refused.value.job_id == first.job_id
    assert await arq.zcard(keys.QUEUE_NAME) == 1


async def test_first_start_is_the_same_job_and_a_requested_one_replaces_the_version(
    make_settings: SettingsFactory, arq: ArqRedis, tmp_path: Path
) -> None:
    settings = make_settings(book_source=str(SAMPLE_BOOK))
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        latest = (await arq.get(keys.REINDEX_LATEST)).decode()
        startup = await finished(arq, latest)
        assert (startup.trigger, startup.status, startup.mode_used) == ("startup", "complete", "full")
        assert startup.message == "first start: collection missing"
        assert await running_job(arq) is None  # released

        queued = await request_reindex(arq, source=str(SAMPLE_BOOK), mode="incremental", trigger="api")
        done = await finished(arq, queued.job_id)
        assert done.status == "complete" and done.documents_unchanged == 6 and done.collection == startup.collection

        full = await request_reindex(arq, source=str(SAMPLE_BOOK), mode="full", trigger="api")
        rebuilt = await finished(arq, full.job_id)
        assert rebuilt.status == "complete" and rebuilt.previous_collection == startup.collection
        assert rebuilt.points == startup.points and await running_job(arq) is None


async def test_a_job_for_a_missing_source_fails_and_frees_the_lock(
    make_settings: SettingsFactory, arq: ArqRedis, tmp_path: Path
) -> None:
    async with running_worker(make_settings()) as worker:
        await worker_ready(worker)
        queued = await request_reindex(arq, source=str(tmp_path / "nowhere"), mode="full", trigger="api")
        failed = await finished(arq, queued.job_id)
        assert failed.status == "failed" and "not a folder" in (failed.error or "")
        assert await running_job(arq) is None


async def test_a_job_whose_lock_another_holds_does_not_run(make_settings: SettingsFactory, arq: ArqRedis) -> None:
    async with running_worker(make_settings()) as worker:
        await worker_ready(worker)
        queued = await request_reindex(arq, source=str(SAMPLE_BOOK), mode="full", trigger="api")
        # the lease ran out (say the job sat in the queue too long) and someone else took the lock
        assert await release_lock(arq, queued.job_id) and await acquire_lock(arq, "someone-else")
        failed = await finished(arq, queued.job_id)
        assert failed.status == "failed" and failed.error == "another re-index (someone-else) is running"
        assert await running_job(arq) == "someone-else"


async def test_the_schedule_queues_incremental_jobs(make_settings: SettingsFactory, arq: ArqRedis) -> None:
    settings = make_settings(book_source=str(SAMPLE_BOOK), reindex_every_s=0.2)
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        scheduled: ReindexProgress | None = None
        while scheduled is None and time.monotonic() < deadline:
            latest = await arq.get(keys.REINDEX_LATEST)
            progress = await read_progress(arq, latest.decode()) if latest else None
            if progress is not None and progress.trigger == "schedule":
                scheduled = await finished(arq, progress.job_id)
            else:
                await asyncio.sleep(0.05)
        assert scheduled is not None, "no scheduled re-index ran"
        assert scheduled.status == "complete" and scheduled.mode == "incremental"
        assert scheduled.message == "nothing changed: the serving version is up to date"
