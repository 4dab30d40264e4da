"""Timings of turns as the worker sees them, for logs and benchmarks.

The queue hop (gateway received the ask → worker started the turn) can only be measured here. When
``RECORD_TIMINGS`` is on (benchmarks), each sample also goes to a capped Redis list for the benchmark to
read; otherwise only running totals are kept.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from shared import keys

logger = logging.getLogger(__name__)


class TurnTimings:
    def __init__(self, redis: Redis, record: bool) -> None:
        self._redis = redis
        self._record = record
        self.turns = 0
        self.hop_total_s = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def observe_hop(self, seconds: float) -> None:
        self.turns += 1
        self.hop_total_s += seconds
        if self._record:
            task = asyncio.create_task(self._push(keys.TIMINGS_HOP, seconds))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def observe_turn(self, seconds: float) -> None:
        logger.debug("turn took %.3fs", seconds)

    async def _push(self, key: str, seconds: float) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, f"{seconds * 1000:.3f}")
            pipe.ltrim(key, -100_000, -1)
            await pipe.execute()
