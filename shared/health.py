"""The worker's heartbeat: how the gateway learns that a worker is alive and the knowledge base ready,
without opening Qdrant itself (embedded Qdrant can only be opened by one process); and why the first
indexing failed, when it did."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

HEARTBEAT_INTERVAL_S = 1.0
# A first-start failure is re-written on every retry (at most a minute apart) and deleted on success; it
# expires by itself when no worker is left to retry.
INDEXING_FAILURE_TTL_S = 180
# The worker counts as gone once its heartbeat key has not been written for this long: its turns are handed on
# or end with worker_lost (gateway/reaper.py) 6-7 s after it died. Six beats: an event loop slowed by a starved
# CPU wrote it up to 3.9 s apart at load average 9-10 on 2 cores (bench/analysis.md, item 22).
HEARTBEAT_TTL_S = 6


class WorkerHeartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["worker_heartbeat"] = "worker_heartbeat"
    worker_id: str
    provider: Literal["cohere", "offline"]
    collection: str
    collection_ready: bool
    points: int
    qdrant_location: str
    qdrant_error: str | None = None
    jobs_running: int = 0
    at: float


class IndexingFailure(BaseModel):
    """Why the first indexing of ``BOOK_SOURCE`` failed, as one line saying what failed and what to change.

    ``/ready`` shows it to anyone, so it holds only the service's own words, settings' names, hosts and
    book paths: never a secret, a file system path, a URL's query or user info, or what a remote server
    sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["indexing_failure"] = "indexing_failure"
    line: str
    at: float
