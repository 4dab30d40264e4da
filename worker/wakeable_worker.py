"""An arq ``Worker`` that starts jobs the moment they are enqueued instead of on its next poll.

arq sleeps ``poll_delay`` (0.5 s by default) between looks at the queue, which alone adds ~250 ms on
average before a turn starts. Polling faster costs Redis round trips all day long. Instead this worker
waits on a pub/sub wake-up that the gateway publishes after every enqueue and abort; the poll remains,
every ``idle_poll_s``, as a safety net for a lost message or a delayed (deferred/retried) job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared import keys
from shared.waiting import wait_event

logger = logging.getLogger(__name__)

# arq's poll reads the due job ids (ZRANGEBYSCORE) and then claims them one by one (WATCH, EXISTS, ZSCORE,
# MULTI/SET/EXEC each). This does the read and the same check-and-claim, for all of them, in one call. A job
# is claimed when it is due (score <= now) and not in progress anywhere; claiming sets its in-progress key,
# as arq does. Jobs running here or elsewhere stay in the queue's sorted set until they finish: skipped.
_CLAIM_DUE_JOBS = """
-- KEYS[1] the queue; ARGV[1] now (ms), ARGV[2] in-progress TTL (ms), ARGV[3] in-progress key prefix,
-- ARGV[4] how many to claim at most, ARGV[5] how many due ids to look at.
-- Returns id, score, id, score, ... of the jobs claimed, in queue order.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[5])
local room = tonumber(ARGV[4])
local claimed = {}
for i = 1, #due, 2 do
  if room <= 0 then break end
  local key = ARGV[3] .. due[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, '1', 'PX', ARGV[2])
    claimed[#claimed + 1] = due[i]
    claimed[#claimed + 1] = due[i + 1]
    room = room - 1
  end
end
return claimed
"""


class WakeableWorker(Worker):
    def __init__(self, *args: Any, redis_url: str, idle_poll_s: float = 0.5, **kwargs: Any) -> None:
        kwargs["poll_delay"] = 0  # arq's sleep is replaced by _wait_for_work below
        super().__init__(*args, **kwargs)
        self._redis_url = redis_url
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._claim_script: AsyncScript | None = None
        self.wakeups_received = 0

    async def main(self) -> None:
        self._listener = asyncio.create_task(self._listen_for_wakeups(), name="wake-listener")
        try:
            await super().main()
        finally:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _poll_iteration(self) -> None:
        # Clear before looking, so a wake-up that arrives while we look is not lost.
        self._wake.clear()
        try:
            await self._look_at_the_queue()
        except (RedisError, OSError) as exc:
            # Redis restarting: keep the process (and its turns' state) and look again after the idle poll,
            # instead of crashing into a supervisord restart.
            logger.warning("cannot poll the queue (%s); retrying", type(exc).__name__)
        if not self.burst:
            await wait_event(self._wake, self._idle_poll_s)

    async def _look_at_the_queue(self) -> None:
        """arq's ``_poll_iteration``, with its queue read and job claims made in one Lua call.

        Claiming job by job took four round trips each, one job after the other, also for the jobs this
        worker already runs; under load each round trip waits for a busy event loop, and at 100 turns in
        flight the queue hop grew to seconds (bench/hop_relay.py). Each round trip left on this path is
        time before a turn starts.
        """
        room = self.max_jobs - self.job_counter
        if self.burst and self.max_burst_jobs >= 0:
            room = min(room, self.max_burst_jobs - self._jobs_started())
        if self.allow_pick_jobs and room > 0:
            await self._claim_and_start(room)
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq does: an error in run_job propagates
        await self.heart_beat()

    async def _claim_and_start(self, room: int) -> None:
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(_CLAIM_DUE_JOBS)
        claimed = await self._claim_script(
            keys=[self.queue_name],
            args=[
                timestamp_ms(),
                int(self.in_progress_timeout_s * 1000),
                in_progress_key_prefix,
                room,
                self.queue_read_limit,
            ],
        )
        for raw_id, raw_score in zip(claimed[::2], claimed[1::2], strict=True):
            await self.sem.acquire()  # room was counted above: this does not wait
            self.job_counter += 1
            job_id = raw_id.decode()
            task = self.loop.create_task(self.run_job(job_id, int(float(raw_score))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        finally:
            self._wake.set()  # a slot is free: look at the queue again now, not on the next poll

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
