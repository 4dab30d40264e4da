"""The worker's heartbeat: a short-lived key in Redis saying it is alive and whether the book is indexed.

The gateway's ``/ready`` reads it (it cannot open embedded Qdrant itself), and its reaper hands on or ends the
turns of a worker whose key expired (``HEARTBEAT_TTL_S``). The event loop writes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from shared import keys
from shared.health import HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S, WorkerHeartbeat
from shared.waiting import wait_event
from worker.history.writer import HistoryWriter
from worker.knowledge.collection_status import CollectionStatus
from worker.services import WorkerServices

logger = logging.getLogger(__name__)


class WorkerState:
    """What the heartbeat reports besides the store's own status."""

    def __init__(self) -> None:
        self.worker_id = uuid.uuid4().hex[:12]
        self.indexing = True
        self.index_error: str | None = None
        self.changed = asyncio.Event()  # refresh the status now, not at the next interval
        self.status: CollectionStatus | None = None
        self.status_changed = asyncio.Event()  # beat now with the new status
        self.announced_ready = asyncio.Event()  # a heartbeat saying "ready" is in Redis
        self.published_failure = asyncio.Event()  # why the first indexing failed is in Redis, for /ready
        self.history_writer: HistoryWriter | None = None  # moves finished turns into the database


async def refresh_status(services: WorkerServices, state: WorkerState) -> None:
    """Keep ``state.status`` current. Apart from the beat: embedded Qdrant has one thread, and under load a
    status call waits behind searches, but the beat must go out on time with the last status known."""
    while True:
        try:
            state.status = await services.store.status()
            state.status_changed.set()
        except Exception as exc:
            logger.warning("collection status failed: %s", type(exc).__name__)
        state.changed.clear()
        await wait_event(state.changed, HEARTBEAT_INTERVAL_S)


async def beat(services: WorkerServices, state: WorkerState, jobs_running: Callable[[], int]) -> None:
    """Every ``HEARTBEAT_INTERVAL_S``, and at once when the status changes."""
    settings = services.settings
    while True:
        status = state.status
        try:
            heartbeat = WorkerHeartbeat(
                worker_id=state.worker_id,
                provider=settings.provider,
                collection=settings.qdrant_collection,
                collection_ready=status is not None and status.exists and status.points > 0 and not state.indexing,
                points=status.points if status is not None else 0,
                qdrant_location=status.location if status is not None else services.store.location,
                qdrant_error=(status.error if status is not None else None) or state.index_error,
                jobs_running=jobs_running(),
                at=time.time(),
            )
            await services.redis.set(
                keys.worker_heartbeat(state.worker_id), heartbeat.model_dump_json(), ex=HEARTBEAT_TTL_S
            )
            if heartbeat.collection_ready and not state.announced_ready.is_set():
                logger.info("worker ready: '%s' has %d points", heartbeat.collection, heartbeat.points)
                state.announced_ready.set()
        except Exception as exc:
            logger.warning("heartbeat failed: %s", type(exc).__name__)
        state.status_changed.clear()
        await wait_event(state.status_changed, HEARTBEAT_INTERVAL_S)
