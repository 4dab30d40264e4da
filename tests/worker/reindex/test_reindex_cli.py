"""``tutor-reindex``: queued for a running worker and followed, or run in this process when none runs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from rich.console import Console

from shared import keys
from shared.reindex import acquire_lock, read_progress, running_job
from tests.conftest import SettingsFactory
from tests.factories import SAMPLE_BOOK
from tests.stack import running_worker, worker_ready
from worker.knowledge.store import KnowledgeStore
from worker.reindex.cli import EXIT_BUSY, EXIT_CANNOT_START, EXIT_COMPLETE, EXIT_FAILED, Options, parse_args, run


@pytest.fixture(autouse=True)
async def clean_redis(redis: Redis) -> AsyncIterator[None]:
    """Start from an empty Redis, and leave no re-index lock or queued job behind for tests that do not
    flush it (a stale lock would hold up their worker's first indexing)."""
    yield
    await redis.flushall()


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False), out


async def test_in_process_when_no_worker_runs(make_settings: SettingsFactory, redis: Redis) -> None:
    settings = make_settings(book_source=str(SAMPLE_BOOK))
    screen, out = console()
    assert await run(settings, Options(), screen) == EXIT_COMPLETE
    text = out.getvalue()
    assert ": complete" in text and "6 in the new version: 6 new" in text
    latest = (await redis.get(keys.REINDEX_LATEST)).decode()
    progress = await read_progress(redis, latest)
    assert progress is not None and (progress.trigger, progress.status) == ("cli", "complete")
    assert await running_job(redis) is None
    store = await KnowledgeStore.open(settings)
    try:
        assert (await store.status()).points == progress.points
    finally:
        await store.close()


async def test_via_the_running_worker(make_settings: SettingsFactory, redis: Redis, tmp_path: Path) -> None:
    settings = make_settings(book_source=str(SAMPLE_BOOK))
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        screen, out = console()
        code = await run(settings, Options(mode="incremental"), screen)  # a worker runs: it does the job
        assert code == EXIT_COMPLETE, out.getvalue()
        assert "queued re-index" in out.getvalue() and "nothing changed" in out.getvalue()

        # the embedded store belongs to the worker: running here is refused with the reason
        screen, out = console()
        assert await run(settings, Options(way="in-process"), screen) == EXIT_CANNOT_START
        assert "--via-worker" in out.getvalue()

        screen, out = console()
        missing = Options(source=str(tmp_path / "nowhere"), way="worker")
        assert await run(settings, missing, screen) == EXIT_FAILED
        assert "not a folder" in out.getvalue()


async def test_busy_when_another_reindex_holds_the_lock(make_settings: SettingsFactory, redis: Redis) -> None:
    await acquire_lock(redis, "f" * 32)
    settings = make_settings(book_source=str(SAMPLE_BOOK))
    for way in ("worker", "in-process"):
        screen, out = console()
        assert await run(settings, Options(way=way), screen) == EXIT_BUSY
        assert "already running (" + "f" * 32 + ")" in out.getvalue()


async def test_no_redis_for_the_worker_way(make_settings: SettingsFactory) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    screen, out = console()
    assert await run(settings, Options(way="worker"), screen) == EXIT_CANNOT_START
    assert "cannot reach Redis" in out.getvalue()


def test_arguments() -> None:
    assert parse_args([]) == Options()
    assert parse_args(["--source", "https://x/sitemap.xml", "--mode", "incremental", "--via-worker", "--no-wait"]) == (
        Options(source="https://x/sitemap.xml", mode="incremental", way="worker", wait=False)
    )
