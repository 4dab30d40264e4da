"""Holding the re-index lock while a build runs: the worker's job and ``tutor-reindex`` alike.

The lease (shared/reindex.py) is renewed every quarter of its TTL. One that ran out while Redis stalled is
taken back if nobody took it; if another job took it, ``on_lost`` is called (the worker cancels its job).
While Redis is down the build goes on, and the lease is renewed when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis

from shared.reindex import LOCK_TTL_S, ReindexProgress, acquire_lock, release_lock, renew_lock, running_job
from worker.knowledge.index_progress import ProgressSink

logger = logging.getLogger(__name__)


class LockLease:
    """The lock ``job_id`` holds: kept alive from ``start`` until ``release`` or ``close``."""

    def __init__(
        self,
        redis: Redis,
        job_id: str,
        *,
        on_lost: Callable[[], object] | None = None,
        renew_every_s: float = LOCK_TTL_S / 4,
    ) -> None:
        self._redis = redis
        self._job_id = job_id
        self._on_lost = on_lost
        self._renew_every_s = renew_every_s
        self._keeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._keeper = asyncio.create_task(self._keep(), name="reindex-lock")

    async def release(self) -> None:
        """Stop renewing and free the lock (it raises when Redis cannot be reached)."""
        await self._stop_keeper()
        await release_lock(self._redis, self._job_id)

    async def close(self) -> None:
        """``release``, never raising and never cut short by a cancellation: for ``finally``."""
        await asyncio.shield(self._stop_keeper())
        with contextlib.suppress(Exception):
            await asyncio.shield(release_lock(self._redis, self._job_id))

    def released_before_the_end(self, write: ProgressSink) -> ProgressSink:
        """A progress sink that frees the lock before the final report is written: whoever reads "complete"
        may ask for the next job at once."""

        async def sink(update: ReindexProgress) -> None:
            if update.finished:
                await self.release()
            await write(update)

        return sink

    async def _stop_keeper(self) -> None:
        if self._keeper is None:
            return
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every_s)
            try:
                if await renew_lock(self._redis, self._job_id):
                    continue
                if await acquire_lock(self._redis, self._job_id):  # the lease ran out (Redis stalled?); nobody took it
                    continue
                logger.error("re-index %s lost its lock to %s", self._job_id, await running_job(self._redis))
                if self._on_lost is not None:
                    self._on_lost()
                return
            except Exception as exc:
                logger.warning("could not renew the re-index lock: %s", type(exc).__name__)
