"""A build's progress reaches its watcher at each stage, and a watcher that fails never fails the build."""

from __future__ import annotations

import asyncio

import pytest

from shared.reindex import ReindexProgress
from worker.knowledge.index_progress import ProgressReporter


async def test_each_stage_is_sent_at_once() -> None:
    seen: list[str] = []

    async def sink(progress: ReindexProgress) -> None:
        seen.append(progress.stage)

    reporter = ProgressReporter(ReindexProgress(job_id="j", source="book"), sink)
    for stage in ("reading", "chunking", "writing"):
        await reporter.stage(stage)
    assert seen == ["reading", "chunking", "writing"]


async def test_a_failing_sink_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    async def sink(progress: ReindexProgress) -> None:
        raise ConnectionError("redis is down")

    reporter = ProgressReporter(ReindexProgress(job_id="j", source="book"), sink)
    await reporter.stage("reading")
    assert reporter.progress.stage == "reading"
    assert "could not record re-index progress: ConnectionError" in caplog.text


async def test_the_ticker_sends_counters_while_a_stage_runs_and_stops_after() -> None:
    sent = asyncio.Event()

    async def sink(progress: ReindexProgress) -> None:
        sent.set()

    reporter = ProgressReporter(ReindexProgress(job_id="j", source="book"), sink)
    async with reporter.ticking():
        await sent.wait()  # nothing but the ticker emits here
        (ticker,) = [t for t in asyncio.all_tasks() if t.get_name() == "reindex-progress"]
    with pytest.raises(asyncio.CancelledError):
        await ticker
