"""Re-indexing inside the worker: the arq job, the first-start index, and the optional schedule.

All three run ``IndexBuild`` (worker/knowledge/indexing.py) on the worker's own ``KnowledgeStore``: the
embedded Qdrant can be opened by one process only, and queries keep going through the same store while
a new version is built next to the one they read. Each holds the re-index lock (shared/reindex.py) for
as long as it runs, renewing its lease, and writes its progress to Redis where the gateway's admin API
and ``tutor-reindex`` read it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis

from shared import keys
from shared.health import INDEXING_FAILURE_TTL_S, IndexingFailure
from shared.jobs import ReindexJob
from shared.redact import display_source
from shared.reindex import (
    PROGRESS_TTL_S,
    ReindexAlreadyRunning,
    ReindexProgress,
    acquire_lock,
    new_job_id,
    read_progress,
    renew_lock,
    request_reindex,
    running_job,
    write_progress,
)
from worker.knowledge.embed_cache import EmbeddingCache, cache_path
from worker.knowledge.index_report import IndexingError, IndexReport
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.qdrant_errors import KnowledgeStoreError
from worker.knowledge.version_checks import reason_to_index
from worker.reindex.lock_lease import LockLease
from worker.services import WorkerServices

logger = logging.getLogger(__name__)

STARTUP_LOCK_POLL_S = 1.0


async def run_reindex(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
    """arq job: build a new version of the knowledge base from the job's source and switch to it.

    The outcome is in the job's progress report (``status`` ends ``complete`` or ``failed``); an aborted
    job is cancelled here, reports ``failed`` and leaves the previous version serving."""
    services: WorkerServices = ctx["services"]
    job = ReindexJob.model_validate(payload)
    await execute(services, job)


async def execute(
    services: WorkerServices, job: ReindexJob, *, progress: ReindexProgress | None = None
) -> IndexReport | None:
    """Run one re-index under the lock; None when it failed (the report says why)."""
    redis = services.redis
    progress = progress or await read_progress(redis, job.job_id)
    if progress is None:
        progress = ReindexProgress(job_id=job.job_id, source=job.source, mode=job.mode, trigger=job.trigger)
        progress.enqueued_at = job.requested_at
    holder = await running_job(redis)
    if holder != job.job_id and not (holder is None and await acquire_lock(redis, job.job_id)):
        progress.status, progress.stage, progress.finished_at = "failed", "done", time.time()
        progress.error = f"another re-index ({holder}) is running"
        await write_progress(redis, progress)
        return None
    await renew_lock(redis, job.job_id)
    this_job = asyncio.current_task()
    lease = LockLease(redis, job.job_id, on_lost=this_job.cancel if this_job is not None else None)
    lease.start()

    async def write(update: ReindexProgress) -> None:
        await write_progress(redis, update)

    cache: EmbeddingCache | None = None
    try:
        if services.cohere is not None:
            cache = await EmbeddingCache.open(cache_path(services.settings.data_dir))
        build = IndexBuild(
            services.store,
            source=job.source,
            base_url=services.settings.book_base_url,
            embedder=services.cohere,
            embed_model=services.settings.cohere_embed_model,
            cache=cache,
            mode=job.mode,
            progress=progress,
            sink=lease.released_before_the_end(write),
        )
        logger.info(
            "re-index %s started (%s, %s, from %s)", job.job_id, job.trigger, job.mode, display_source(job.source)
        )
        try:
            report = await build.run()
        except (IndexingError, KnowledgeStoreError) as exc:
            logger.warning("re-index %s failed: %s", job.job_id, exc)
            return None
        except asyncio.CancelledError:
            logger.warning("re-index %s cancelled; the previous version keeps serving", job.job_id)
            raise
        except Exception:
            logger.exception("re-index %s failed", job.job_id)
            return None
        logger.info(
            "re-index %s complete: %d documents, %d points in %.2fs",
            job.job_id,
            report.documents,
            report.chunks,
            report.seconds,
        )
        return report
    finally:
        await lease.close()
        if cache is not None:
            await asyncio.shield(cache.close())


async def index_at_startup(services: WorkerServices) -> IndexReport | None:
    """The worker's first-start indexing: the same job, run here unless the serving version fits.

    Waits while another re-index holds the lock (another worker indexing the same store), then looks again.
    Raises when the build failed, so the caller retries."""
    store, settings, redis = services.store, services.settings, services.redis
    want_dense = services.cohere is not None
    job_id = new_job_id()
    while True:
        reason = await reason_to_index(store, want_dense)
        if reason is None:
            logger.info("collection %s ready at %s", store.collection, store.location)
            return None
        if await acquire_lock(redis, job_id):
            break
        await asyncio.sleep(STARTUP_LOCK_POLL_S)
    job = ReindexJob(
        job_id=job_id, source=settings.book_source, mode="full", trigger="startup", requested_at=time.time()
    )
    progress = ReindexProgress(job_id=job_id, source=job.source, mode="full", trigger="startup")
    progress.message = f"first start: {reason}"
    await write_progress(redis, progress)
    await redis.set(keys.REINDEX_LATEST, job_id, ex=PROGRESS_TTL_S)
    logger.info("indexing %s into %s: %s", display_source(settings.book_source), store.collection, reason)
    report = await execute(services, job, progress=progress)
    if report is None:
        raise IndexingError(progress.error or "indexing failed")
    return report


MAX_FAILURE_LINE = 400


def first_start_failure(exc: BaseException) -> str:
    """The first indexing's failure as one line for ``/ready``: what failed and what to change, nothing else
    (``IndexingError`` texts are written for that; other errors are only named, their text may hold paths)."""
    if isinstance(exc, IndexingError):
        what = str(exc)
    elif isinstance(exc, KnowledgeStoreError):
        what = "the knowledge store cannot be used (the worker's log says why); check QDRANT_URL or DATA_DIR"
    else:
        what = f"unexpected {type(exc).__name__} (the worker's log says more)"
    line = f"indexing BOOK_SOURCE failed: {what}"
    return line if len(line) <= MAX_FAILURE_LINE else line[: MAX_FAILURE_LINE - 1] + "…"


async def publish_first_start_failure(redis: Redis, line: str | None) -> None:
    """Write (or, with None, clear) the line ``/ready`` shows while the first indexing keeps failing."""
    if line is None:
        await redis.delete(keys.INDEXING_FAILURE)
        return
    failure = IndexingFailure(line=line, at=time.time())
    await redis.set(keys.INDEXING_FAILURE, failure.model_dump_json(), ex=INDEXING_FAILURE_TTL_S)


async def schedule_reindexes(services: WorkerServices, every_s: float) -> None:
    """Every ``every_s`` seconds ask for an incremental re-index of BOOK_SOURCE (skipped while one runs)."""
    redis = services.redis
    if not isinstance(redis, ArqRedis):
        logger.warning("periodic re-indexing needs arq's Redis client; schedule disabled")
        return
    while True:
        await asyncio.sleep(every_s)
        try:
            progress = await request_reindex(
                redis, source=services.settings.book_source, mode="incremental", trigger="schedule"
            )
            logger.info("scheduled re-index %s queued", progress.job_id)
        except ReindexAlreadyRunning as running:
            logger.info("scheduled re-index skipped: %s is running", running.job_id)
        except Exception as exc:
            logger.warning("could not queue the scheduled re-index: %s", type(exc).__name__)
