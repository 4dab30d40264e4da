"""``tutor-reindex`` (``make reindex``): re-index the knowledge base from the command line, with a progress bar.

Two ways to run, chosen automatically unless ``--via-worker`` or ``--in-process`` says which:

* **via the worker** when one is running (its heartbeat is in Redis): the job is queued through Redis
  exactly as ``POST /api/admin/reindex`` queues it, and the bar follows the progress the worker writes.
  With the embedded Qdrant this is the only way while the service runs, because the worker holds the
  store's folder (embedded Qdrant allows one process). Ctrl-C stops following; the job goes on.
* **in this process** when no worker runs (say, to build the index before the first start): the same
  ``IndexBuild`` runs here on its own store. When Redis answers, the re-index lock is taken and the
  progress written there as well, so the admin API sees it and a worker starting meanwhile waits.

Exit status: 0 complete, 1 failed, 2 another re-index is running, 3 could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from arq.connections import ArqRedis
from redis.exceptions import RedisError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared import keys
from shared.arq_redis import arq_redis
from shared.health import WorkerHeartbeat
from shared.jobs import ReindexMode
from shared.logs import configure_logging
from shared.reindex import (
    LOCK_TTL_S,
    PROGRESS_TTL_S,
    ReindexAlreadyRunning,
    ReindexProgress,
    acquire_lock,
    new_job_id,
    read_progress,
    request_reindex,
    running_job,
    write_progress,
)
from shared.settings import Settings, load_settings
from worker.cohere.client import build_cohere_clients
from worker.cohere.provider import CohereProvider
from worker.knowledge.embed_cache import EmbeddingCache, cache_path
from worker.knowledge.index_report import IndexingError
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.qdrant_errors import KnowledgeStoreError
from worker.knowledge.store import KnowledgeStore
from worker.reindex.lock_lease import LockLease

FOLLOW_EVERY_S = 0.25
EXIT_COMPLETE, EXIT_FAILED, EXIT_BUSY, EXIT_CANNOT_START = 0, 1, 2, 3


@dataclass(frozen=True)
class Options:
    source: str | None = None
    mode: ReindexMode = "full"
    way: str | None = None  # "worker" | "in-process" | None (decide)
    follow: str | None = None  # follow this job id instead of starting one
    wait: bool = True  # follow the job until it ends


class ProgressView:
    """The rich progress bar for a ``ReindexProgress`` that changes as the job goes."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("queued", total=None, detail="")

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: ReindexProgress) -> None:
        total: int | None
        done: int
        stage = p.stage.split(" (", 1)[0]
        if stage == "reading":
            total, done = p.documents_total or None, p.documents_read
        elif stage == "embedding":
            total, done = p.chunks or None, p.embedded + p.embed_cached
        elif stage == "writing":
            total, done = p.chunks or None, p.upserted
        elif stage in {"verifying", "switching", "cleaning up", "done"}:
            total = done = max(p.points or 0, 1)
        else:
            total, done = None, 0
        detail = f"{p.documents} docs, {p.chunks} chunks, {p.skipped_count} skipped"
        if p.rate_limited_waits:
            detail += f", rate limited x{p.rate_limited_waits}"
        self.progress.update(self.task, description=p.stage, total=total, completed=done, detail=detail)


def summary_table(p: ReindexProgress) -> Table:
    table = Table(title=f"re-index {p.job_id}: {p.status}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("source", f"{p.source} ({p.mode_used or p.mode} mode, {'hybrid' if p.dense else 'keywords only'})"),
        (
            "documents",
            f"{p.documents} in the new version: {p.documents_new} new, {p.documents_changed} changed, "
            f"{p.documents_unchanged} unchanged, {p.documents_deleted} deleted",
        ),
        ("chunks", f"{p.chunks} written, {p.copied} copied unchanged, {p.points or 0} points in the version"),
        ("embedding", f"{p.embedded} embedded, {p.embed_cached} from the cache, {p.rate_limited_waits} rate limits"),
        ("collection", f"{p.collection or '-'} (replaced {p.previous_collection or 'nothing'})"),
    ]
    if p.started_at and p.finished_at:
        rows.append(("took", f"{p.finished_at - p.started_at:.2f}s"))
    if p.message:
        rows.append(("note", p.message))
    if p.error:
        rows.append(("error", f"[red]{p.error}[/red]"))
    for skipped in p.skipped[:20]:
        rows.append(("skipped", f"{skipped.doc}: {skipped.reason}"))
    if p.skipped_count > 20:
        rows.append(("skipped", f"... and {p.skipped_count - 20} more"))
    for name, value in rows:
        table.add_row(name, value)
    return table


async def _redis_up(redis: ArqRedis) -> bool:
    try:
        return bool(await redis.ping())
    except (RedisError, OSError):
        return False


async def _worker_alive(redis: ArqRedis) -> bool:
    async for key in redis.scan_iter(match=f"{keys.WORKER_HEARTBEAT_PREFIX}*", count=100):
        raw = await redis.get(key)
        if raw is None:
            continue
        with contextlib.suppress(ValueError):
            WorkerHeartbeat.model_validate_json(raw)
            return True
    return False


async def follow(redis: ArqRedis, job_id: str, console: Console) -> ReindexProgress | None:
    """Show the job's progress until it ends (polling Redis four times a second)."""
    last: ReindexProgress | None = None
    with ProgressView(console) as view:
        while True:
            progress = await read_progress(redis, job_id)
            if progress is None:
                return last
            view.update(progress)
            last = progress
            if progress.finished:
                return progress
            await asyncio.sleep(FOLLOW_EVERY_S)


async def run_in_process(
    settings: Settings, options: Options, redis: ArqRedis | None, console: Console
) -> tuple[int, ReindexProgress | None]:
    source = options.source or settings.book_source
    job_id = new_job_id()
    progress = ReindexProgress(job_id=job_id, source=source, mode=options.mode, trigger="cli")
    if redis is not None:
        if not await acquire_lock(redis, job_id, LOCK_TTL_S):
            console.print(f"[yellow]a re-index is already running ({await running_job(redis)})[/yellow]")
            return EXIT_BUSY, None
        await write_progress(redis, progress)
        await redis.set(keys.REINDEX_LATEST, job_id, ex=PROGRESS_TTL_S)
    lease = LockLease(redis, job_id) if redis is not None else None
    try:
        try:
            store = await KnowledgeStore.open(settings)
        except KnowledgeStoreError as exc:
            console.print(f"[red]{exc}[/red]")
            if "already accessed" in str(exc):
                console.print("the worker holds the embedded store: start it and use --via-worker")
            if redis is not None:
                progress.status, progress.stage, progress.error = "failed", "done", str(exc)
                await write_progress(redis, progress)
            return EXIT_CANNOT_START, None
        parts = build_cohere_clients(settings)
        cohere = CohereProvider(parts, settings, redis) if parts else None  # the workers' shared limits
        cache = await EmbeddingCache.open(cache_path(settings.data_dir)) if cohere is not None else None
        if lease is not None:
            lease.start()
        try:
            with ProgressView(console) as view:

                async def show(update: ReindexProgress) -> None:
                    view.update(update)

                async def show_and_record(update: ReindexProgress) -> None:
                    view.update(update)
                    if redis is not None:
                        await write_progress(redis, update)

                sink = lease.released_before_the_end(show_and_record) if lease is not None else show

                build = IndexBuild(
                    store,
                    source=source,
                    base_url=settings.book_base_url,
                    embedder=cohere,
                    embed_model=settings.cohere_embed_model,
                    cache=cache,
                    mode=options.mode,
                    progress=progress,
                    sink=sink,
                )
                with contextlib.suppress(IndexingError, KnowledgeStoreError):
                    await build.run()
                view.update(progress)
        finally:
            if cache is not None:
                await cache.close()
            if cohere is not None:
                await cohere.close()
            await store.close()
    finally:
        if lease is not None:
            await lease.close()
    return (EXIT_COMPLETE if progress.status == "complete" else EXIT_FAILED), progress


async def run(settings: Settings, options: Options, console: Console) -> int:
    redis = arq_redis(settings, socket_timeout=10)  # a command line: no wait without an end
    try:
        redis_up = await _redis_up(redis)
        worker_up = redis_up and await _worker_alive(redis)
        way = options.way or ("worker" if worker_up or options.follow else "in-process")
        if way == "in-process":
            code, final = await run_in_process(settings, options, redis if redis_up else None, console)
        else:
            if not redis_up:
                console.print(f"[red]cannot reach Redis at {settings.effective_redis_url}[/red]")
                return EXIT_CANNOT_START
            if not worker_up:
                console.print("[yellow]no worker is running: the job waits in the queue until one starts[/yellow]")
            job_id = options.follow
            if job_id is None:
                try:
                    queued = await request_reindex(
                        redis, source=options.source or settings.book_source, mode=options.mode, trigger="cli"
                    )
                except ReindexAlreadyRunning as running:
                    console.print(f"[yellow]a re-index is already running ({running.job_id})[/yellow]")
                    console.print(f"follow it with: tutor-reindex --follow {running.job_id}")
                    return EXIT_BUSY
                job_id = queued.job_id
                console.print(f"queued re-index {job_id}")
            if not options.wait:
                return EXIT_COMPLETE
            final = await follow(redis, job_id, console)
            if final is None:
                console.print(f"[red]no progress report for {job_id}[/red]")
                return EXIT_FAILED
            code = EXIT_COMPLETE if final.status == "complete" else EXIT_FAILED
        if final is not None:
            console.print(summary_table(final))
        return code
    finally:
        await redis.aclose(close_connection_pool=True)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="tutor-reindex", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help="a folder of Markdown/MDX or a sitemap.xml URL (default: BOOK_SOURCE)")
    parser.add_argument("--mode", choices=["full", "incremental"], default="full")
    way = parser.add_mutually_exclusive_group()
    way.add_argument("--via-worker", dest="way", action="store_const", const="worker", help="queue it for the worker")
    way.add_argument("--in-process", dest="way", action="store_const", const="in-process", help="run it here")
    parser.add_argument("--follow", metavar="JOB_ID", help="follow a job already queued instead of starting one")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="queue the job and exit")
    args = parser.parse_args(argv)
    return Options(source=args.source, mode=args.mode, way=args.way, follow=args.follow, wait=args.wait)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    settings = load_settings()
    # the bar is the output; log lines only when something is wrong
    configure_logging("WARNING", settings.secret_values(), "reindex")
    console = Console()
    started = time.perf_counter()
    try:
        code = asyncio.run(run(settings, options, console))
    except KeyboardInterrupt:
        console.print("interrupted: a job queued for the worker goes on; one run here was cancelled")
        code = EXIT_FAILED
    logging.getLogger(__name__).debug("tutor-reindex took %.2fs", time.perf_counter() - started)
    sys.exit(code)


if __name__ == "__main__":
    main()
