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

from arq.worker import Worker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys

logger = logging.getLogger(__name__)


class WakeableWorker(Worker):
    def __init__(self, *args: Any, redis_url: str, idle_poll_s: float = 0.5, **kwargs: Any) -> None:
        kwargs["poll_delay"] = 0  # arq's sleep is replaced by _wait_for_work below
        super().__init__(*args, **kwargs)
        self._redis_url = redis_url
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
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
        await super()._poll_iteration()
        if not self.burst:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)

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
