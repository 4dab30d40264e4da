"""Re-indexing the book in the background: the job's progress report, the one-at-a-time lock, and asking
for a re-index (the gateway's admin API, the command line and the worker's schedule all go through
``request_reindex``).

The lock is a Redis key holding the job id, with a lease: whoever asks for a re-index takes it (so a
second request gets 409 at once instead of queueing behind the first), the worker renews it while the
job runs and releases it when the job ends. A worker that dies stops renewing, and the lease runs out.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Literal

from arq.connections import ArqRedis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.asyncio import Redis

from shared import keys
from shared.jobs import REINDEX, ReindexJob, ReindexMode, ReindexTrigger
from shared.redact import display_source

LOCK_TTL_S = 60  # a running job renews every LOCK_TTL_S / 4
QUEUED_LOCK_TTL_S = 600  # a queued job has this long to be picked up by a worker
PROGRESS_TTL_S = 7 * 24 * 3600
JOB_TIMEOUT_S = 6 * 3600  # a book with rate-limited embedding takes minutes; hours means something is wrong
MAX_SKIPPED_LISTED = 500

ReindexStatus = Literal["queued", "running", "complete", "failed"]

# Compare-and-act on the lock: only its holder may renew or release it.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('expire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class SkippedDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    doc: str
    """A document's path, or a URL (the sitemap's own, a page's) shown without its credentials."""
    reason: str

    _shown_doc = field_validator("doc")(display_source)


class ReindexProgress(BaseModel):
    """What a re-index job has done so far; the gateway returns it from ``GET /api/admin/reindex/{id}``."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    type: Literal["reindex_progress"] = "reindex_progress"
    job_id: str
    status: ReindexStatus = "queued"
    stage: str = "queued"
    """queued, reading, chunking, embedding, writing, copying, verifying, switching, cleaning up, done."""
    trigger: ReindexTrigger = "api"
    source: str
    """The job's source as people may see it (``display_source``): the admin API returns this report."""
    mode: ReindexMode = "full"
    mode_used: ReindexMode | None = None
    """An incremental job becomes a full one when there is no usable previous version."""
    dense: bool = False
    documents_total: int = 0
    """Documents found in the source (files, or pages of the sitemap under the book's base URL)."""
    documents_read: int = 0
    documents: int = 0
    """Documents in the new version."""
    documents_new: int = 0
    documents_changed: int = 0
    documents_unchanged: int = 0
    documents_deleted: int = 0
    chunks: int = 0
    """Chunks made from new and changed documents (what is encoded, embedded and written)."""
    embedded: int = 0
    """Texts sent to the embedding model."""
    embed_cached: int = 0
    """Texts whose embedding came from the cache."""
    upserted: int = 0
    copied: int = 0
    """Points of unchanged documents copied from the previous version (incremental mode)."""
    skipped: list[SkippedDocument] = Field(default_factory=list)
    skipped_count: int = 0
    rate_limited_waits: int = 0
    collection: str | None = None
    """The version this job builds."""
    previous_collection: str | None = None
    points: int | None = None
    """Points in the new version, as counted by the check before the switch."""
    message: str | None = None
    error: str | None = None
    enqueued_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float = Field(default_factory=time.time)

    _shown_source = field_validator("source")(display_source)

    def skip(self, doc: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(SkippedDocument(doc=doc, reason=reason))

    @property
    def finished(self) -> bool:
        return self.status in {"complete", "failed"}


class ReindexAlreadyRunning(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"re-index {job_id} is running")
        self.job_id = job_id


def new_job_id() -> str:
    return uuid.uuid4().hex


async def write_progress(redis: Redis, progress: ReindexProgress) -> None:
    progress.updated_at = time.time()
    await redis.set(keys.reindex_progress(progress.job_id), progress.model_dump_json(), ex=PROGRESS_TTL_S)


async def read_progress(redis: Redis, job_id: str) -> ReindexProgress | None:
    raw = await redis.get(keys.reindex_progress(job_id))
    if raw is None:
        return None
    try:
        return ReindexProgress.model_validate_json(raw)
    except ValidationError:
        return None


async def running_job(redis: Redis) -> str | None:
    raw = await redis.get(keys.REINDEX_LOCK)
    return raw.decode() if isinstance(raw, bytes) else raw


async def acquire_lock(redis: Redis, job_id: str, ttl_s: int = LOCK_TTL_S) -> bool:
    return bool(await redis.set(keys.REINDEX_LOCK, job_id, nx=True, ex=ttl_s))


async def renew_lock(redis: Redis, job_id: str, ttl_s: int = LOCK_TTL_S) -> bool:
    return bool(await redis.eval(_RENEW, 1, keys.REINDEX_LOCK, job_id, str(ttl_s)))  # type: ignore[misc]


async def release_lock(redis: Redis, job_id: str) -> bool:
    return bool(await redis.eval(_RELEASE, 1, keys.REINDEX_LOCK, job_id))  # type: ignore[misc]


async def request_reindex(
    redis: ArqRedis, *, source: str, mode: ReindexMode, trigger: ReindexTrigger
) -> ReindexProgress:
    """Take the lock, record the job as queued and enqueue it; ``ReindexAlreadyRunning`` if one is running."""
    job_id = new_job_id()
    while not await acquire_lock(redis, job_id, QUEUED_LOCK_TTL_S):
        running = await running_job(redis)
        if running is not None:
            raise ReindexAlreadyRunning(running)
        # released between the two calls: try again
    progress = ReindexProgress(job_id=job_id, source=source, mode=mode, trigger=trigger)
    try:
        await write_progress(redis, progress)
        await redis.set(keys.REINDEX_LATEST, job_id, ex=PROGRESS_TTL_S)
        job = ReindexJob(job_id=job_id, source=source, mode=mode, trigger=trigger, requested_at=time.time())
        enqueued = await redis.enqueue_job(
            REINDEX, job.model_dump(mode="json"), _job_id=job_id, _queue_name=keys.QUEUE_NAME
        )
        if enqueued is None:
            raise RuntimeError("the re-index job could not be enqueued")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            progress.status, progress.stage, progress.finished_at = "failed", "done", time.time()
            progress.error = f"could not enqueue the job ({type(exc).__name__})"
            await write_progress(redis, progress)
            await release_lock(redis, job_id)
        raise
    return progress
