"""Building the worker: its services in ``on_startup``, heartbeat and first indexing in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from arq import func
from arq.connections import RedisSettings

from shared import keys
from shared.db.database import Database
from shared.health import HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S, WorkerHeartbeat
from shared.jobs import REINDEX, RUN_TURN, job_deserializer, job_serializer
from shared.redis_connections import redis_client
from shared.reindex import JOB_TIMEOUT_S
from shared.settings import Settings
from shared.turn_events import TurnEventWriter
from shared.waiting import wait_event
from worker.cohere.client import build_cohere_clients
from worker.cohere.provider import CohereProvider
from worker.history.retention import purge_history_periodically
from worker.history.writer import HistoryWriter
from worker.knowledge.store import CollectionStatus, KnowledgeStore
from worker.reindex.job import (
    first_start_failure,
    index_at_startup,
    publish_first_start_failure,
    run_reindex,
    schedule_reindexes,
)
from worker.runtime.heartbeat_keeper import HeartbeatKeeper
from worker.runtime.services import WorkerServices
from worker.runtime.wakeable_worker import WakeableWorker
from worker.turns.conversation import ConversationMemory
from worker.turns.event_sink import EventBatcher
from worker.turns.timings import TurnTimings
from worker.turns.turn import run_turn

logger = logging.getLogger(__name__)

BACKGROUND_STOP_S = 5.0


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
        self.keeper: HeartbeatKeeper | None = None  # repeats the last beat from a thread (overloaded loop)
        self.history_writer: HistoryWriter | None = None


class TutorWorker(WakeableWorker):
    """The worker with the state its heartbeat reports (tests await ``state.announced_ready``)."""

    state: WorkerState


async def _index_until_ready(services: WorkerServices, state: WorkerState) -> None:
    backoff = 1.0
    while True:
        try:
            # the same job as a re-index asked for through the API, with its lock and progress report
            report = await index_at_startup(services)
            if report is not None:
                logger.info(
                    "indexed %s: %d documents, %d chunks in %.2fs (%d skipped)",
                    services.settings.book_source,
                    report.documents,
                    report.chunks,
                    report.seconds,
                    len(report.skipped),
                )
            state.indexing, state.index_error = False, None
            state.changed.set()
            await _publish_failure(services, None)
            return
        except Exception as exc:
            state.index_error = first_start_failure(exc)
            state.changed.set()
            if await _publish_failure(services, state.index_error):
                state.published_failure.set()
            logger.warning("indexing the book failed (%s); retrying in %.0fs", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 60.0)


async def _publish_failure(services: WorkerServices, line: str | None) -> bool:
    try:
        await publish_first_start_failure(services.redis, line)
    except Exception as exc:  # /ready then lacks the explanation; the worker's log still has it
        logger.warning("could not publish the indexing failure: %s", type(exc).__name__)
        return False
    return True


async def _refresh_status(services: WorkerServices, state: WorkerState) -> None:
    """Keep ``state.status`` current. Separate from the beat: embedded Qdrant has one thread, and under load
    a status call waits behind searches and upserts; the beat must go out on time regardless, with the last
    status known, or the gateway's reaper takes a busy worker for a dead one."""
    while True:
        try:
            state.status = await services.store.status()
            state.status_changed.set()
        except Exception as exc:
            logger.warning("collection status failed: %s", type(exc).__name__)
        state.changed.clear()
        await wait_event(state.changed, HEARTBEAT_INTERVAL_S)


async def _beat(services: WorkerServices, state: WorkerState, worker: WakeableWorker) -> None:
    settings = services.settings
    while True:
        status = state.status
        try:
            beat = WorkerHeartbeat(
                worker_id=state.worker_id,
                provider=settings.provider,
                collection=settings.qdrant_collection,
                collection_ready=status is not None and status.exists and status.points > 0 and not state.indexing,
                points=status.points if status is not None else 0,
                qdrant_location=status.location if status is not None else services.store.location,
                qdrant_error=(status.error if status is not None else None) or state.index_error,
                jobs_running=len(worker.tasks),
                at=time.time(),
            )
            payload = beat.model_dump_json()
            await services.redis.set(keys.worker_heartbeat(state.worker_id), payload, ex=HEARTBEAT_TTL_S)
            if state.keeper is not None:
                state.keeper.update(payload)
            if beat.collection_ready and not state.announced_ready.is_set():
                logger.info("worker ready: '%s' has %d points", beat.collection, beat.points)
                state.announced_ready.set()
        except Exception as exc:
            logger.warning("heartbeat failed: %s", type(exc).__name__)
        state.status_changed.clear()
        await wait_event(state.status_changed, HEARTBEAT_INTERVAL_S)


def build_worker(
    settings: Settings, *, burst: bool = False, handle_signals: bool = True, idle_poll_s: float = 0.5
) -> TutorWorker:
    state = WorkerState()
    background: list[asyncio.Task[None]] = []

    async def on_startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        cohere_parts = build_cohere_clients(settings)
        cohere = CohereProvider(cohere_parts, settings, redis) if cohere_parts else None
        store = await KnowledgeStore.open(settings)
        # the turns' events on a client of their own: its connections pack in C (shared.redis_connections)
        events_redis = redis_client(settings.effective_redis_url, socket_timeout=10, socket_connect_timeout=2)
        ctx["events_redis"] = events_redis
        database = Database(settings)
        database.start()
        ctx["database"] = database
        # the history writer's blocking reads on a connection of their own
        history_redis = redis_client(settings.effective_redis_url, socket_timeout=10, socket_connect_timeout=2)
        ctx["history_redis"] = history_redis
        services = WorkerServices(
            settings=settings,
            worker_id=state.worker_id,
            redis=redis,
            batcher=EventBatcher(
                TurnEventWriter(events_redis, settings.turn_events_ttl_s, settings.max_events_per_turn)
            ),
            store=store,
            cohere=cohere,
            memory=ConversationMemory(
                redis, settings.conversation_max_turns, settings.conversation_ttl_s, database=database
            ),
            metrics=TurnTimings(redis, settings.record_timings),
            database=database,
        )
        ctx["services"] = services
        state.keeper = HeartbeatKeeper(
            settings.effective_redis_url, keys.worker_heartbeat(state.worker_id), HEARTBEAT_TTL_S, HEARTBEAT_INTERVAL_S
        )
        state.keeper.start()
        background.append(asyncio.create_task(_refresh_status(services, state), name="collection-status"))
        background.append(asyncio.create_task(_beat(services, state, worker), name="heartbeat"))
        writer = HistoryWriter(history_redis, database, consumer=state.worker_id)
        state.history_writer = writer
        background.append(asyncio.create_task(writer.run(), name="history-writer"))
        background.append(
            asyncio.create_task(
                purge_history_periodically(database, settings.history_retention_days), name="history-retention"
            )
        )
        indexing = asyncio.create_task(_index_until_ready(services, state), name="first-index")
        background.append(indexing)
        if settings.reindex_every_s > 0:
            background.append(
                asyncio.create_task(schedule_reindexes(services, settings.reindex_every_s), name="reindex-schedule")
            )
        if burst:
            await indexing  # tests run the worker in burst mode and need the index before the first job
        logger.info("worker %s started (provider: %s)", state.worker_id, settings.provider)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        for task in background:
            task.cancel()
        if background:
            # bounded: a task that ignores its cancellation must not keep the process from stopping
            stopped, stuck = await asyncio.wait(background, timeout=BACKGROUND_STOP_S)
            for task in stopped:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("background task %s had failed: %r", task.get_name(), task.exception())
            for task in stuck:
                logger.error("background task %s did not stop within %.0fs", task.get_name(), BACKGROUND_STOP_S)
        if state.keeper is not None:
            await asyncio.to_thread(state.keeper.stop)  # before the key is deleted, or it would come back
        services: WorkerServices | None = ctx.get("services")
        if services is None:
            return
        with contextlib.suppress(Exception):
            await services.redis.delete(keys.worker_heartbeat(state.worker_id))
        await services.store.close()
        await ctx["events_redis"].aclose()
        await ctx["history_redis"].aclose()
        await ctx["database"].close()
        if services.cohere is not None:
            await services.cohere.close()

    worker = TutorWorker(
        functions=[
            func(run_turn, name=RUN_TURN, max_tries=1, timeout=settings.turn_timeout_s + 10),
            func(run_reindex, name=REINDEX, max_tries=1, timeout=JOB_TIMEOUT_S),
        ],
        redis_url=settings.effective_redis_url,
        redis_settings=RedisSettings.from_dsn(settings.effective_redis_url),
        queue_name=keys.QUEUE_NAME,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        max_jobs=settings.worker_max_jobs,
        allow_abort_jobs=True,
        keep_result=0,
        burst=burst,
        handle_signals=handle_signals and not burst,
        idle_poll_s=idle_poll_s,
        health_check_interval=10,
        # On SIGTERM: stop taking turns, let those in flight finish for a while, then cancel them (they
        # end with a clear error; see worker/turns/turn.py).
        job_completion_wait=int(settings.shutdown_grace_s),
    )
    worker.state = state
    return worker
