"""A build's progress, handed to whoever watches it (Redis for the admin API, the command line's bar).

Stage changes go out at once; counters at most every ``PROGRESS_EVERY_S``, and a ticker sends them while a
long stage runs. Watching is never a reason to fail a build, so a sink that fails is logged and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from shared.reindex import ReindexProgress

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25

ProgressSink = Callable[[ReindexProgress], Awaitable[None]]


class ProgressReporter:
    """Sends ``progress`` (updated in place by the build) to ``sink``; without a sink it only records."""

    def __init__(self, progress: ReindexProgress, sink: ProgressSink | None) -> None:
        self.progress = progress
        self._sink = sink
        self._last_emit = 0.0

    async def emit(self, *, force: bool = False) -> None:
        if self._sink is None:
            return
        now = time.monotonic()
        if not force and now - self._last_emit < PROGRESS_EVERY_S:
            return
        self._last_emit = now
        try:
            await self._sink(self.progress)
        except Exception as exc:
            log.warning("could not record re-index progress: %s", type(exc).__name__)

    async def stage(self, stage: str) -> None:
        self.progress.stage = stage
        await self.emit(force=True)

    @contextlib.asynccontextmanager
    async def ticking(self) -> AsyncIterator[None]:
        """While the block runs, counters go out even when a stage reports nothing for a while."""
        ticker = asyncio.create_task(self._tick(), name="reindex-progress")
        try:
            yield
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S * 2)
            await self.emit()
