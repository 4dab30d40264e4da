"""How close the workers' heartbeats come to expiring while a benchmark level runs.

Every 100 ms the watcher reads each heartbeat key's remaining lifetime (``PTTL``, Redis's own clock): the TTL
minus it is how long ago the key was last written. The largest such age is the longest silence of a worker's
heartbeat; a key that is gone while its worker runs is a lapse (the gateway's reaper would take that worker for
dead). The watcher shares the starved CPU too: a late sample can miss the worst moment, never inflate it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis

from shared import keys
from shared.health import HEARTBEAT_TTL_S

SAMPLE_EVERY_S = 0.1
SCAN_COUNT = 10_000


class HeartbeatWatch:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._oldest_ms = 0
        self._lapses = 0
        self._samples = 0
        self._seen: set[bytes] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="heartbeat-watch")

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return {
            "heartbeat_ttl_ms": HEARTBEAT_TTL_S * 1000,
            "heartbeat_longest_silence_ms": self._oldest_ms,
            "heartbeat_lapses": self._lapses,
            "heartbeat_samples": self._samples,
        }

    async def _watch(self) -> None:
        while True:
            # Redis holds thousands of keys while a level runs (each turn's stream, flags and arq's job keys):
            # SCAN's default of 10 keys a call made each sample hundreds of round trips, whose CPU the watcher
            # took from the stack it measures (bench/analysis.md, item 25).
            async for key in self._redis.scan_iter(match=keys.WORKER_HEARTBEAT_PREFIX + "*", count=SCAN_COUNT):
                self._seen.add(key)
            for key in self._seen:
                remaining = await self._redis.pttl(key)
                self._samples += 1
                if remaining == -2:
                    self._lapses += 1
                elif remaining >= 0:
                    self._oldest_ms = max(self._oldest_ms, HEARTBEAT_TTL_S * 1000 - remaining)
            await asyncio.sleep(SAMPLE_EVERY_S)
