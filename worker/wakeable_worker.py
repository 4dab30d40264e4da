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

# What arq's Worker.start_jobs checks and sets per job, for a whole batch in one call. A job is claimed when
# it is due (score <= now) and not in progress anywhere; claiming sets its in-progress key, as arq does.
_CLAIM_JOBS = """
-- KEYS[1] the queue; ARGV[1] now (ms), ARGV[2] in-progress TTL (ms), ARGV[3] in-progress key prefix,
-- ARGV[4..] job ids. Returns id, score, id, score, ... of the jobs claimed.
local claimed = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = ARGV[3] .. id
  if redis.call('EXISTS', key) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], id)
    if score and tonumber(score) <= tonumber(ARGV[1]) then
      redis.call('SET', key, '1', 'PX', ARGV[2])
      claimed[#claimed + 1] = id
      claimed[#claimed + 1] = score
    end
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
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            # Redis restarting: keep the process (and its turns' state) and look again after the idle poll,
            # instead of crashing into a supervisord restart.
            logger.warning("cannot poll the queue (%s); retrying", type(exc).__name__)
        if not self.burst:
            await wait_event(self._wake, self._idle_poll_s)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim the due jobs of this poll in one round trip, then start them.

        arq claims job by job: WATCH, EXISTS, ZSCORE, then MULTI/SET/EXEC — four round trips each, one
        job after the other, and it even does that for the jobs this worker is already running (they stay
        in the queue's sorted set until they finish). Under load each round trip waits for a busy event
        loop, so starting 50 turns took seconds and the queue hop grew to seconds at 100 turns in flight
        (bench/hop_relay.py). One Lua call makes the same check-and-claim for all of them, atomically.
        """
        room = max(self.max_jobs - self.job_counter, 0)
        candidates = [job_id for job_id in (raw.decode() for raw in job_ids) if job_id not in self.tasks][:room]
        if not candidates:
            return
        if self._claim_script is None:
            self._claim_script = self.pool.register_script(_CLAIM_JOBS)
        ttl_ms = int(self.in_progress_timeout_s * 1000)
        claimed = await self._claim_script(
            keys=[self.queue_name], args=[timestamp_ms(), ttl_ms, in_progress_key_prefix, *candidates]
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
