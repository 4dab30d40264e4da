"""The admin API: start, follow and cancel a background re-index of the knowledge base.

Off unless ``ADMIN_TOKEN`` is set: every route then answers 404, as if it did not exist. With it set, a
request needs ``Authorization: Bearer <ADMIN_TOKEN>`` (compared in constant time); none or a wrong one
gets 401, and too many failures from one address get 429 (gateway/admin_access.py). The gateway never
touches Qdrant: it takes the re-index lock, records the job and enqueues it (shared/reindex.py); a worker
builds the new version and writes the progress returned here.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.admin_access import Access, AdminAccess, AdminAccessDep
from gateway.services import ServicesDep
from gateway.turns import abort_job
from shared import keys
from shared.jobs import ReindexMode
from shared.reindex import (
    ReindexAlreadyRunning,
    ReindexProgress,
    read_progress,
    release_lock,
    request_reindex,
    write_progress,
)

router = APIRouter(prefix="/api/admin", tags=["admin"])

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"


class AdminError(BaseModel):
    code: Literal[
        "unauthorized", "rate_limited", "reindex_running", "unknown_job", "already_finished", "invalid_request"
    ]
    message: str
    job_id: str | None = None


class ReindexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="A folder of Markdown/MDX on the server, or a Docusaurus sitemap.xml URL; BOOK_SOURCE if absent.",
    )
    mode: ReindexMode = Field("full", description="incremental: only new, changed and deleted documents.")

    @field_validator("source")
    @classmethod
    def _path_or_web_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value or "\x00" in value:
            raise ValueError("source must be a folder path or an http(s) sitemap URL")
        if "://" in value and not value.lower().startswith(("http://", "https://")):
            raise ValueError("a sitemap URL must start with http:// or https://")
        return value


class ReindexAccepted(BaseModel):
    job_id: str
    status_url: str


def _error(status_code: int, error: AdminError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error.model_dump(mode="json")}, status_code=status_code, headers=headers)


def _denied(access: AdminAccess) -> JSONResponse | None:
    """None when the request may use the admin API, else the answer to give it."""
    if access.granted:
        return None
    if access.access is Access.OFF:
        return JSONResponse({"detail": "Not Found"}, status_code=status.HTTP_404_NOT_FOUND)
    if access.access is Access.LIMITED:
        return _error(
            status.HTTP_429_TOO_MANY_REQUESTS,
            AdminError(code="rate_limited", message="too many failed attempts; please wait"),
            headers={"Retry-After": str(max(1, round(access.retry_after_s)))},
        )
    return _error(
        status.HTTP_401_UNAUTHORIZED,
        AdminError(code="unauthorized", message="a valid admin token is required"),
        headers={"WWW-Authenticate": "Bearer"},
    )


JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="The id POST /api/admin/reindex answered.")]
_COMMON: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or wrong admin token"},
    429: {"description": "Too many failed attempts from this address"},
    404: {"description": "Admin API off (ADMIN_TOKEN unset), or no such job"},
}


@router.post(
    "/reindex",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReindexAccepted,
    responses={**_COMMON, 409: {"model": dict[str, AdminError], "description": "A re-index is running"}},
)
async def start_reindex(
    services: ServicesDep, access: AdminAccessDep, response: Response, request: ReindexRequest | None = None
) -> Any:
    """Queue a re-index: a new version of the knowledge base is built in the background and replaces the
    serving one only once complete and checked; chat keeps answering throughout."""
    if (denied := _denied(access)) is not None:
        return denied
    body = request or ReindexRequest()
    source = body.source or services.settings.book_source
    try:
        progress = await request_reindex(services.redis, source=source, mode=body.mode, trigger="api")
    except ReindexAlreadyRunning as running:
        return _error(
            status.HTTP_409_CONFLICT,
            AdminError(code="reindex_running", message="a re-index is already running", job_id=running.job_id),
        )
    status_url = f"/api/admin/reindex/{progress.job_id}"
    response.headers["Location"] = status_url
    return ReindexAccepted(job_id=progress.job_id, status_url=status_url)


@router.get("/reindex", response_model=ReindexProgress, responses=_COMMON)
async def latest_reindex(services: ServicesDep, access: AdminAccessDep) -> Any:
    """The most recent re-index (queued, running or finished)."""
    if (denied := _denied(access)) is not None:
        return denied
    raw = await services.redis.get(keys.REINDEX_LATEST)
    progress = await read_progress(services.redis, raw.decode()) if raw else None
    if progress is None:
        return _error(status.HTTP_404_NOT_FOUND, AdminError(code="unknown_job", message="no re-index has run yet"))
    return progress


@router.get("/reindex/{job_id}", response_model=ReindexProgress, responses=_COMMON)
async def reindex_status(job_id: JobId, services: ServicesDep, access: AdminAccessDep) -> Any:
    """Status and progress of a re-index; ``status`` ends as ``complete`` or ``failed``."""
    if (denied := _denied(access)) is not None:
        return denied
    progress = await read_progress(services.redis, job_id)
    if progress is None:
        return _error(
            status.HTTP_404_NOT_FOUND, AdminError(code="unknown_job", message="no such re-index", job_id=job_id)
        )
    return progress


@router.delete(
    "/reindex/{job_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReindexProgress,
    responses={**_COMMON, 409: {"model": dict[str, AdminError], "description": "The job already finished"}},
)
async def cancel_reindex(job_id: JobId, services: ServicesDep, access: AdminAccessDep) -> Any:
    """Cancel a re-index; the serving version stays as it is."""
    if (denied := _denied(access)) is not None:
        return denied
    redis = services.redis
    progress = await read_progress(redis, job_id)
    if progress is None:
        return _error(
            status.HTTP_404_NOT_FOUND, AdminError(code="unknown_job", message="no such re-index", job_id=job_id)
        )
    if progress.finished:
        return _error(
            status.HTTP_409_CONFLICT,
            AdminError(code="already_finished", message=f"the re-index already {progress.status}", job_id=job_id),
        )
    await abort_job(redis, job_id)
    if progress.status == "queued":
        # arq drops an aborted job before it starts, so nobody else would record the end or free the lock
        progress.status, progress.stage, progress.finished_at = "failed", "done", time.time()
        progress.error = "cancelled before it started; the previous version keeps serving"
        await write_progress(redis, progress)
        await release_lock(redis, job_id)
    return progress
