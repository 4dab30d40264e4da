"""The worker's heartbeat: how the gateway learns that a worker is alive and the knowledge base ready,
without opening Qdrant itself (embedded Qdrant can only be opened by one process)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

HEARTBEAT_INTERVAL_S = 1.0
# Three missed beats and the worker counts as gone: its turns end with worker_lost (gateway/reaper.py)
# about 3-4 s after it died.
HEARTBEAT_TTL_S = 3


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
