"""An arq ``Worker`` that starts jobs the moment they are enqueued instead of on its next poll.

arq sleeps ``poll_delay`` (0.5 s by default) between looks at the queue, which alone adds ~250 ms on
average before a turn starts. Polling faster costs Redis round trips all day long. Instead:

* **Turns** arrive through the intake list (``keys.TURN_INTAKE``): the gateway pushes each turn's job id
  there in the same call that enqueues the job, and every worker with room waits on it in a blocking pop,
  so Redis hands a new turn to exactly one waiting worker the moment it is enqueued. The worker then claims
  it with the same check arq makes (not in progress anywhere, due) and starts it.
* **Everything else** (re-index jobs, aborts, deferred and retried jobs, and any turn whose id was popped by
  a worker that died before claiming it) goes through arq's poll of the queue's sorted set, woken by a
  pub/sub message and otherwise run every ``idle_poll_s`` as a safety net. A job is in that sorted set
  whichever way it starts, so nothing depends on the intake list alone.

Either way one Lua call claims a batch of jobs and fetches what arq's ``run_job`` would read next (the job,
its try count, its abort flag), so a claimed job starts without another round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared import keys
from shared.redis_connections import redis_client
from shared.waiting import wait_event

logger = logging.getLogger(__name__)

# What arq's Worker.start_jobs checks and sets per job, for a whole batch in one call, followed by what
# arq's run_job reads and writes first (its MULTI of GET job, INCR and EXPIRE of the try count, ZREM from the
# abort set). A job is claimed when it is due (score <= now) and not in progress anywhere; claiming sets its
# in-progress key, as arq does.
_CLAIM_JOBS = """
-- KEYS[1] the queue, KEYS[2] arq's abort set; ARGV[1] now (ms), ARGV[2] in-progress TTL (ms), ARGV[3]
-- in-progress key prefix, ARGV[4] job key prefix, ARGV[5] try-count key prefix, ARGV[6..] job ids.
-- Returns id, score, job (nil if it expired), try, aborted (0/1), ... for each job claimed.
local claimed = {}
for i = 6, #ARGV do
  local id = ARGV[i]
  local key = ARGV[3] .. id
  if redis.call('EXISTS', key) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= tonumber(ARGV[1]) then
      redis.call('SET', key, '1', 'PX', ARGV[2])
      local tries = ARGV[5] .. id
      local try = redis.call('INCR', tries)
      redis.call('EXPIRE', tries, 88400)
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
      claimed[#claimed + 1] = redis.call('GET', ARGV[4] .. id)
      claimed[#claimed + 1] = try
      claimed[#claimed + 1] = redis.call('ZREM', KEYS[2], id)
    end
  end
end
return claimed
"""

# How long one blocking pop of the intake list waits before it is made again (it also notices a lost Redis).
INTAKE_BLOCK_S = 5.0


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What the claim fetched for arq's ``run_job``: the raw job (None if it expired), try and abort flag."""

    job: bytes | None
    job_try: int
    aborted: bool


class _ClaimedJobPipeline:
    """Stands in for the one pipeline arq's ``run_job`` opens before running a job, answering with what the
    claim fetched (in the order arq queued its commands) instead of a second round trip."""

    def __init__(self, claimed: ClaimedJob) -> None:
        self._claimed = claimed
        self._results: list[Any] = []

    async def __aenter__(self) -> _ClaimedJobPipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def get(self, _key: str) -> None:
        self._results.append(self._claimed.job)

    def incr(self, _key: str) -> None:
        self._results.append(self._claimed.job_try)

    def expire(self, _key: str, _seconds: int) -> None:
        self._results.append(True)

    def zrem(self, _key: str, *_ids: str) -> None:
        self._results.append(int(self._claimed.aborted))

    async def execute(self) -> list[Any]:
        return self._results


class _ClaimedJobPool:
    """``Worker.pool`` for the first pipeline of a claimed job's ``run_job``; nothing else is asked of it."""

    def __init__(self, claimed: ClaimedJob) -> None:
        self._claimed = claimed

    def pipeline(self, transaction: bool = True) -> _ClaimedJobPipeline:
        return _ClaimedJobPipeline(self._claimed)


# Set by run_job (in its own task, so per job) and taken by the first look at ``pool`` that follows.
_CLAIMED: contextvars.ContextVar[ClaimedJob | None] = contextvars.ContextVar("claimed_job", default=None)


class WakeableWorker(Worker):
    def __init__(self, *args: Any, redis_url: str, idle_poll_s: float = 0.5, **kwargs: Any) -> None:
        kwargs["poll_delay"] = 0  # arq's sleep is replaced by _wait_for_work below
        super().__init__(*args, **kwargs)
        self._redis_url = redis_url
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._claims_redis: Redis | None = None  # ours, not arq's pool: its connections are handed out at once
        self._claim_script: AsyncScript | None = None
        self._claiming = asyncio.Lock()  # the poll and the intake claim one after the other: room is counted once
        self._claimed: dict[str, ClaimedJob] = {}
        self.slot_freed = asyncio.Event()  # set whenever a job ends (the intake waits on it when full)
        self.wakeups_received = 0
        self.taken_from_intake = 0

    @property
    def pool(self) -> ArqRedis:
        claimed = _CLAIMED.get()
        if claimed is None:
            return super().pool
        _CLAIMED.set(None)  # only run_job's first pipeline is answered from the claim
        return _ClaimedJobPool(claimed)  # type: ignore[return-value]

    async def main(self) -> None:
        self._claims_redis = redis_client(self._redis_url, socket_timeout=10, socket_connect_timeout=5)
        self._claim_script = self._claims_redis.register_script(_CLAIM_JOBS)
        helpers = [asyncio.create_task(self._listen_for_wakeups(), name="wake-listener")]
        if not self.burst:
            helpers.append(asyncio.create_task(self._take_from_intake(), name="turn-intake"))
        try:
            await super().main()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._claims_redis.aclose()

    async def _poll_iteration(self) -> None:
        # Clear before looking, so a wake-up that arrives while we look is not lost.
        self._wake.clear()
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            # Redis restarting: keep the process (and its turns' state) and look again after the idle poll,
            # instead of crashing into a supervisord restart.
            logger.warning("cannot poll the queue (%s); retrying", type(exc).__name__)
        if not self.burst:
            await wait_event(self._wake, self._idle_poll_s)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim the due jobs among ``job_ids`` in one round trip, then start them.

        arq claims job by job: WATCH, EXISTS, ZSCORE, then MULTI/SET/EXEC — four round trips each, one
        job after the other, and it even does that for the jobs this worker is already running (they stay
        in the queue's sorted set until they finish); then each job's ``run_job`` makes one more. Under load
        each round trip waits for a busy event loop, so starting 50 turns took seconds and the queue hop grew
        to seconds at 100 turns in flight (bench/hop_relay.py). One Lua call makes the same check-and-claim
        for all of them, atomically, and fetches what ``run_job`` reads first.
        """
        async with self._claiming:
            room = max(self.max_jobs - self.job_counter, 0)
            candidates = [job_id for job_id in (raw.decode() for raw in job_ids) if job_id not in self.tasks][:room]
            if not candidates:
                return
            assert self._claim_script is not None, "claims are made from main()"
            ttl_ms = int(self.in_progress_timeout_s * 1000)
            claimed = await self._claim_script(
                keys=[self.queue_name, abort_jobs_ss],
                args=[timestamp_ms(), ttl_ms, in_progress_key_prefix, job_key_prefix, retry_key_prefix, *candidates],
            )
            for index in range(0, len(claimed), 5):
                raw_id, raw_score, job, job_try, aborted = claimed[index : index + 5]
                await self.sem.acquire()  # room was counted above, under the lock: this does not wait
                self.job_counter += 1
                job_id = raw_id.decode()
                self._claimed[job_id] = ClaimedJob(job=job, job_try=int(job_try), aborted=bool(aborted))
                task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task

    async def run_job(self, job_id: str, score: int) -> None:
        claimed = self._claimed.pop(job_id, None)
        if claimed is not None:
            _CLAIMED.set(claimed)
        await super().run_job(job_id, score)

    def _release_sem_dec_counter_on_complete(self) -> None:
        """A job's task ended (arq's callback): once its slot is counted free, tell whoever waits for one."""
        was_full = self.job_counter >= self.max_jobs
        super()._release_sem_dec_counter_on_complete()
        if was_full:
            self._wake.set()  # jobs may be waiting for this slot: look at the queue now, not on the next poll
        self.slot_freed.set()

    async def _take_from_intake(self) -> None:
        """Start turns as the gateway enqueues them: a blocking pop of the intake list on a connection of its
        own, for as many ids as this worker has room for, then the claim. An id popped here whose claim fails
        was started elsewhere (by a poll) or has ended; one popped by a worker that dies before its claim is
        still in the queue's sorted set, where the next poll of any worker finds it."""
        backoff = 0.1
        while True:
            client = redis_client(self._redis_url, socket_timeout=INTAKE_BLOCK_S + 5, socket_connect_timeout=5)
            try:
                while True:
                    room = self.max_jobs - self.job_counter
                    if room <= 0 or not self.allow_pick_jobs:
                        self.slot_freed.clear()
                        await wait_event(self.slot_freed, self._idle_poll_s)
                        continue
                    # redis-py's typed ``blmpop`` takes its keys as lists and its result as not awaitable
                    popped = await client.execute_command(  # type: ignore[no-untyped-call]
                        "BLMPOP", INTAKE_BLOCK_S, 1, keys.TURN_INTAKE, "LEFT", "COUNT", room
                    )
                    backoff = 0.1
                    if popped:
                        _list, job_ids = popped
                        self.taken_from_intake += len(job_ids)
                        await self.start_jobs(job_ids)
            except (RedisError, OSError) as exc:
                logger.warning("turn intake lost Redis (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await client.aclose()

    async def _listen_for_wakeups(self) -> None:
        backoff = 0.1
        while True:
            client = Redis.from_url(self._redis_url, socket_timeout=None, socket_connect_timeout=5)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.WAKE_CHANNEL)
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.wakeups_received += 1
                            self._wake.set()
            except (RedisError, OSError) as exc:
                logger.warning("wake-up listener lost Redis (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await client.aclose()
