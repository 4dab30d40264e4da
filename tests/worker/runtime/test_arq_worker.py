"""The worker's arq ``Worker``: its ``start_jobs`` claims a poll's new jobs side by side (bench/analysis.md, item
24), and still starts each job once, and no more than ``max_jobs`` at a time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import func
from arq.connections import ArqRedis

from shared import keys
from shared.arq_redis import arq_redis
from shared.jobs import job_deserializer, job_serializer
from shared.settings import Settings
from tests.conftest import SettingsFactory
from worker.runtime.arq_worker import STARTS_AT_ONCE, TutorArqWorker


class HeldJobs:
    """A job function that records which jobs started and holds them until released."""

    def __init__(self, expected: int = 0) -> None:
        self.started: Counter[str] = Counter()
        self.expected = expected
        self.all_started = asyncio.Event()  # set once ``expected`` jobs have started
        self.release = asyncio.Event()

    async def run(self, ctx: dict[str, Any], name: str) -> None:
        self.started[name] += 1
        if self.started.total() >= self.expected:
            self.all_started.set()
        await self.release.wait()


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[ArqRedis]:
    client = arq_redis(settings)
    yield client
    await client.aclose(close_connection_pool=True)


def held_worker(settings: Settings, held: HeldJobs, max_jobs: int, name: str = "held-worker") -> TutorArqWorker:
    return TutorArqWorker(
        functions=[func(held.run, name="held")],
        redis_pool=arq_redis(settings, client_name=name),
        queue_name=keys.QUEUE_NAME,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        max_jobs=max_jobs,
        keep_result=0,
        handle_signals=False,
    )


async def enqueue(queue: ArqRedis, count: int) -> list[bytes]:
    for n in range(count):
        assert await queue.enqueue_job("held", f"job-{n}", _job_id=f"job-{n}") is not None
    return [f"job-{n}".encode() for n in range(count)]


async def finish(worker: TutorArqWorker, held: HeldJobs) -> None:
    held.release.set()
    await asyncio.gather(*worker.tasks.values())
    await worker.close()


async def test_a_poll_starts_every_new_job_once(settings: Settings, queue: ArqRedis) -> None:
    count = STARTS_AT_ONCE * 2 + 3  # more than one group of starts
    held = HeldJobs(expected=count)
    worker = held_worker(settings, held, max_jobs=100)
    job_ids = await enqueue(queue, count)
    try:
        await worker.start_jobs(job_ids)
        assert set(worker.tasks) == {job_id.decode() for job_id in job_ids}
        await worker.start_jobs(job_ids)  # the next poll reads the same ids: they are running already
        assert set(worker.tasks) == {job_id.decode() for job_id in job_ids}
        async with asyncio.timeout(30):
            await held.all_started.wait()
        assert held.started == Counter({f"job-{n}": 1 for n in range(count)})
    finally:
        await finish(worker, held)


async def test_no_more_than_max_jobs_start_at_once(settings: Settings, queue: ArqRedis) -> None:
    held = HeldJobs()
    worker = held_worker(settings, held, max_jobs=5)
    job_ids = await enqueue(queue, 12)
    try:
        await worker.start_jobs(job_ids)
        assert len(worker.tasks) == 5
        await worker.start_jobs(job_ids)
        assert len(worker.tasks) == 5
    finally:
        await finish(worker, held)


async def test_two_workers_reading_the_same_jobs_start_each_once(settings: Settings, queue: ArqRedis) -> None:
    held = HeldJobs()
    first = held_worker(settings, held, max_jobs=50, name="first")
    second = held_worker(settings, held, max_jobs=50, name="second")
    job_ids = await enqueue(queue, 30)
    try:
        await asyncio.gather(first.start_jobs(job_ids), second.start_jobs(list(reversed(job_ids))))
        assert not set(first.tasks) & set(second.tasks)
        assert set(first.tasks) | set(second.tasks) == {job_id.decode() for job_id in job_ids}
    finally:
        await finish(first, held)
        await finish(second, held)
