"""How turns reach a worker: the intake list, the claim that fetches what arq's run_job reads, and the poll
that stays as the safety net. A real Redis, the gateway's real ``TurnStarter``, arq's real ``run_job``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.worker import func
from redis.asyncio import Redis

from gateway.app import build_redis
from shared import keys
from shared.jobs import RUN_TURN, TurnJob, job_deserializer, job_serializer
from shared.settings import Settings
from tests.conftest import SettingsFactory
from tests.worker.runtime.turn_queue import assert_given_back, cancel_turn, start_turn
from worker.runtime.job_claims import ClaimedJob, claim_args, claim_keys, parse_claims
from worker.runtime.turn_intake import INTAKE_BLOCK_S
from worker.runtime.wakeable_worker import WakeableWorker


class Recorder:
    """The job function of these tests: records each run and, when told to, holds it until released."""

    def __init__(self, hold: bool = False) -> None:
        self.runs: list[tuple[str, int]] = []
        self.ran = asyncio.Event()
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def run(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        self.runs.append((TurnJob.model_validate(payload).turn_id, ctx["job_try"]))
        self.ran.set()
        await self.release.wait()


def make_worker(settings: Settings, recorder: Recorder, **options: Any) -> WakeableWorker:
    return WakeableWorker(
        functions=[func(recorder.run, name=RUN_TURN, max_tries=1)],
        redis_url=settings.effective_redis_url,
        redis_settings=RedisSettings.from_dsn(settings.effective_redis_url),
        queue_name=keys.QUEUE_NAME,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        allow_abort_jobs=True,
        keep_result=0,
        handle_signals=False,
        **options,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, recorder: Recorder, **options: Any) -> AsyncIterator[WakeableWorker]:
    worker = make_worker(settings, recorder, **options)
    task = asyncio.create_task(worker.async_run())
    try:
        async with asyncio.timeout(10):
            await worker.taking_turns()
        yield worker
    finally:
        recorder.release.set()  # arq's close cancels the jobs it still runs: let them end first
        async with asyncio.timeout(10):
            while worker.job_counter:
                worker.slot_freed.clear()
                await worker.slot_freed.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await worker.close()


async def job_ended(worker: WakeableWorker) -> None:
    async with asyncio.timeout(10):
        await worker.slot_freed.wait()


async def test_a_turn_is_taken_from_the_intake_and_run_once(make_settings: SettingsFactory, redis: Redis) -> None:
    settings, recorder = make_settings(), Recorder()
    # the poll looks once at start-up and then only every minute: the intake must be what starts the turn
    async with running(settings, recorder, idle_poll_s=60) as worker:
        turn_id = await start_turn(settings)
        async with asyncio.timeout(10):
            await recorder.ran.wait()
        await job_ended(worker)
        assert recorder.runs == [(turn_id, 1)], "run once, as its first try"
        assert worker.taken_from_intake == 1
        assert await redis.llen(keys.TURN_INTAKE) == 0
    # arq's own ending of a finished job (run by arq's run_job after the claimed start)
    assert await redis.zscore(keys.QUEUE_NAME, turn_id) is None
    assert not await redis.exists(in_progress_key_prefix + turn_id, job_key_prefix + turn_id)


async def test_a_turn_whose_id_left_the_intake_unclaimed_is_run_by_the_poll(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """A worker that popped the id and died before its claim: the job is still in arq's queue."""
    settings, recorder = make_settings(), Recorder()
    turn_id = await start_turn(settings)
    assert await redis.lpop(keys.TURN_INTAKE) == turn_id.encode()
    async with running(settings, recorder, idle_poll_s=0.2) as worker:
        await job_ended(worker)
        assert recorder.runs == [(turn_id, 1)]
        assert worker.taken_from_intake == 0


async def test_a_turn_cancelled_before_it_started_is_not_run(make_settings: SettingsFactory, redis: Redis) -> None:
    settings, recorder = make_settings(), Recorder()
    turn_id = await start_turn(settings)
    await cancel_turn(settings, turn_id)
    async with running(settings, recorder, idle_poll_s=60) as worker:
        await job_ended(worker)  # the first poll or the intake claimed it: either way the claim read the abort
    assert recorder.runs == [], "arq's abort-before-start, read from the claim"
    assert await redis.zscore(keys.QUEUE_NAME, turn_id) is None


async def test_an_expired_turn_is_not_run(make_settings: SettingsFactory, redis: Redis) -> None:
    settings, recorder = make_settings(), Recorder()
    turn_id = await start_turn(settings)
    await redis.delete(job_key_prefix + turn_id)  # its job expired before a worker came
    async with running(settings, recorder, idle_poll_s=60) as worker:
        await job_ended(worker)
    assert recorder.runs == []
    assert await redis.zscore(keys.QUEUE_NAME, turn_id) is None


async def test_a_full_worker_leaves_turns_queued_until_a_slot_frees(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    settings, recorder = make_settings(), Recorder(hold=True)
    async with running(settings, recorder, idle_poll_s=60, max_jobs=2) as worker:
        first = [await start_turn(settings) for _ in range(2)]
        async with asyncio.timeout(10):
            while len(recorder.runs) < 2:
                recorder.ran.clear()
                await recorder.ran.wait()
        third = await start_turn(settings)
        assert await redis.lrange(keys.TURN_INTAKE, 0, -1) == [third.encode()], "left for a worker with room"
        assert sorted(turn for turn, _ in recorder.runs) == sorted(first)
        recorder.ran.clear()
        recorder.release.set()
        async with asyncio.timeout(10):
            await recorder.ran.wait()
        assert recorder.runs[-1] == (third, 1)
        assert len(recorder.runs) == 3
        # the intake and the poll (woken because the worker was full) raced for it; one of them started it once
        assert worker.taken_from_intake in (2, 3)


async def test_stopping_interrupts_the_intakes_blocking_pop(make_settings: SettingsFactory) -> None:
    """The thread waits in a pop of up to INTAKE_BLOCK_S; a stopping worker must not wait that out."""
    settings, recorder = make_settings(), Recorder()
    async with contextlib.AsyncExitStack() as stack:
        worker = await stack.enter_async_context(running(settings, recorder, idle_poll_s=60))
        intake = worker._intake
        assert intake is not None and intake.listening.is_set()
        async with asyncio.timeout(INTAKE_BLOCK_S / 2):
            await stack.aclose()
    assert not intake._thread.is_alive()


async def claim_by_hand(settings: Settings, worker: WakeableWorker, job_id: str) -> list[ClaimedJob]:
    """A job enqueued by arq alone (neither the intake nor a wake-up hears of it), claimed as the poll claims."""
    arq = build_redis(settings)
    try:
        job = TurnJob(turn_id=job_id, conversation_id="c", question="q", enqueued_at=0.0)
        assert await arq.enqueue_job(RUN_TURN, job.model_dump(mode="json"), _job_id=job_id, _queue_name=keys.QUEUE_NAME)
    finally:
        await arq.aclose(close_connection_pool=True)
    assert worker._claim_script is not None
    reply = await worker._claim_script(
        keys=claim_keys(keys.QUEUE_NAME), args=claim_args([job_id], worker.in_progress_timeout_s, worker._claimer)
    )
    assert worker._reserve(1) == 1
    return parse_claims(reply, worker._claimer)


async def test_a_claimed_turn_that_had_not_started_when_the_worker_stopped_is_given_back(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """Stopping cancels a job's task before its first step unseen: its claim would hold the turn for hours."""
    settings, recorder = make_settings(), Recorder()
    worker = make_worker(settings, recorder, idle_poll_s=60)
    run = asyncio.create_task(worker.async_run())
    async with asyncio.timeout(10):
        await worker.taking_turns()
    worker._start_claimed(await claim_by_hand(settings, worker, "held"), 1)
    await worker.close()  # in the same step: the job's task has not run
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    assert recorder.runs == []
    await assert_given_back(redis, ["held"])
    async with running(settings, recorder, idle_poll_s=0.2) as other:
        async with asyncio.timeout(10):
            await recorder.ran.wait()
        assert recorder.runs == [("held", 1)], "another worker runs it, as its first try"
        await job_ended(other)


async def test_turns_the_intake_hands_over_after_the_worker_began_to_stop_are_given_back(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """A pop served just before the stop: its hand-off reaches the loop after the signal."""
    settings, recorder = make_settings(), Recorder()
    async with running(settings, recorder, idle_poll_s=60) as worker:
        claims = await claim_by_hand(settings, worker, "late")
        worker.handle_sig_wait_for_completion(signal.SIGTERM)
        worker._start_claimed(claims, 1, from_intake=True)
        assert not worker.tasks, "arq's stop neither cancels the give-back nor waits for it as for a job"
        assert worker.giving_back
        assert worker._free_slots() == 0 and worker._reserved == 0, "stopping: no room, and none held"
    # once the worker has stopped (its close waits for the give-back; its intake may pop the id once more
    # before it stops, and gives it back in turn)
    assert not worker.giving_back
    assert recorder.runs == []
    await assert_given_back(redis, ["late"])
