"""arq's ``Worker`` as this service runs it: its jobs, its queue, JSON jobs, how often it polls, and shutdown."""

from __future__ import annotations

import asyncio

from arq import func
from arq.connections import ArqRedis
from arq.typing import StartupShutdown
from arq.worker import Worker
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from shared import keys
from shared.arq_redis import arq_redis
from shared.jobs import REINDEX, RUN_TURN, job_deserializer, job_serializer
from shared.reindex import JOB_TIMEOUT_S
from shared.settings import Settings
from worker.reindex.job import run_reindex
from worker.turns.turn import run_turn

# How often arq looks at the queue (one ZRANGEBYSCORE and one read of the aborted jobs). A new turn waits
# for the next look, 10 ms on average: small beside the 300 ms or more a model takes to its first token.
POLL_DELAY_S = 0.02

# arq's commands ride out a Redis restart (about 40 s of retries), so the poll picks up again by itself
# instead of ending the process. The turns' event writes do not retry (worker/runtime/startup.py).
REDIS_RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=40)


def worker_redis(settings: Settings) -> ArqRedis:
    """arq's client for the worker's poll, retrying through a Redis restart (``REDIS_RETRY``)."""
    return arq_redis(settings, retry=REDIS_RETRY, retry_on_error=[ConnectionError, TimeoutError, OSError])


# How many of a poll's new jobs arq checks and claims at once, each on a pooled connection of its own.
STARTS_AT_ONCE = 25


class TutorArqWorker(Worker):
    """arq's ``Worker`` with one override, of a public method."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # A job stays in arq's queue until it ends, and arq checks every id its poll reads with three round
        # trips, the jobs this worker is already running included: at 100 turns in flight and a poll every
        # 20 ms that was most of the worker's CPU. Those are left out; arq's own checks still guard the rest.
        # arq claims the new ones one after another, four round trips each; on a busy loop every round trip
        # waits for the loop's turn, which capped the turns started to a few per second, far below the slots
        # free (bench/analysis.md, item 24). Each job's check and claim is still arq's, side by side.
        start = super().start_jobs
        new = [job_id for job_id in job_ids if job_id.decode() not in self.tasks]
        for at in range(0, len(new), STARTS_AT_ONCE):
            await asyncio.gather(*(start([job_id]) for job_id in new[at : at + STARTS_AT_ONCE]))


def arq_worker(
    settings: Settings,
    *,
    on_startup: StartupShutdown,
    on_shutdown: StartupShutdown,
    burst: bool,
    handle_signals: bool,
    poll_delay_s: float,
) -> TutorArqWorker:
    return TutorArqWorker(
        functions=[
            # Two tries: a turn whose worker died before its first delta is handed to another worker by the
            # gateway's reaper; one that had streamed ends with worker_lost (gateway/reaper.py, shared/second_try.py).
            func(run_turn, name=RUN_TURN, max_tries=2, timeout=settings.turn_timeout_s + 10),
            func(run_reindex, name=REINDEX, max_tries=1, timeout=JOB_TIMEOUT_S),
        ],
        redis_pool=worker_redis(settings),
        queue_name=keys.QUEUE_NAME,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        max_jobs=settings.worker_max_jobs,
        allow_abort_jobs=True,
        keep_result=0,
        burst=burst,
        handle_signals=handle_signals and not burst,
        poll_delay=poll_delay_s,
        health_check_interval=10,
        # On SIGTERM: take no new jobs, let those in flight finish for a while, then cancel them (a turn
        # then ends with a clear error; see worker/turns/turn.py).
        job_completion_wait=int(settings.shutdown_grace_s),
    )
