"""The worker's start-up and shutdown (arq's ``on_startup``/``on_shutdown``): its shared clients, and the
background tasks that run beside the jobs (heartbeat, first indexing, scheduled re-indexes, the history
writer and its retention purge)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from arq.typing import StartupShutdown
from redis.asyncio import Redis

from shared import keys
from shared.db.database import Database
from shared.redact import display_source
from shared.settings import Settings
from shared.turn_events import TurnEventWriter
from worker.cohere.client import build_cohere_clients
from worker.cohere.provider import CohereProvider
from worker.history.retention import purge_history_periodically
from worker.history.unrecorded import record_unrecorded_periodically
from worker.history.writer import HistoryWriter
from worker.knowledge.book_outlines import BookOutlines
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.vocabulary import BookVocabulary
from worker.reindex.job import first_start_failure, index_at_startup, publish_first_start_failure, schedule_reindexes
from worker.runtime.heartbeat import WorkerState, beat, refresh_status
from worker.services import WorkerServices
from worker.turns.conversation import ConversationMemory
from worker.turns.event_sink import EventBatcher
from worker.turns.timings import TurnTimings

logger = logging.getLogger(__name__)

BACKGROUND_STOP_S = 5.0


async def index_until_ready(services: WorkerServices, state: WorkerState) -> None:
    """Index the book if it needs it (the same job as an API re-index), retrying with backoff until it works."""
    backoff = 1.0
    while True:
        try:
            report = await index_at_startup(services)
            if report is not None:
                logger.info(
                    "indexed %s: %d documents, %d chunks in %.2fs (%d skipped)",
                    display_source(services.settings.book_source),
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
    """Why the first indexing failed (None: it no longer fails), for ``/ready`` to show."""
    try:
        await publish_first_start_failure(services.redis, line)
    except Exception as exc:  # /ready then lacks the explanation; the worker's log still has it
        logger.warning("could not publish the indexing failure: %s", type(exc).__name__)
        return False
    return True


def lifecycle(
    settings: Settings, state: WorkerState, jobs_running: Callable[[], int], *, wait_for_index: bool
) -> tuple[StartupShutdown, StartupShutdown]:
    """arq's ``on_startup`` and ``on_shutdown``. ``wait_for_index``: start taking jobs only once the book is
    indexed (burst workers in tests)."""
    background: list[asyncio.Task[None]] = []

    async def on_startup(ctx: dict[str, Any]) -> None:
        redis = ctx["redis"]
        cohere_clients = build_cohere_clients(settings)
        store = await KnowledgeStore.open(settings)
        # The turns' events on a client of their own, without the retries of arq's: a stream whose Redis
        # restarted is gone, and its turn must stop rather than wait (shared/turn_events.py).
        events_redis = Redis.from_url(settings.effective_redis_url, socket_connect_timeout=2)
        ctx["events_redis"] = events_redis
        database = Database(settings)
        database.start()  # migrates in the background: turns do not wait for the database
        ctx["database"] = database
        # the history writer's blocking reads on a connection of their own
        history_redis = Redis.from_url(settings.effective_redis_url, socket_connect_timeout=2, socket_timeout=10)
        ctx["history_redis"] = history_redis
        services = WorkerServices(
            settings=settings,
            worker_id=state.worker_id,
            redis=redis,
            batcher=EventBatcher(
                TurnEventWriter(events_redis, settings.turn_events_ttl_s, settings.max_events_per_turn)
            ),
            store=store,
            vocabulary=BookVocabulary(store),
            outlines=BookOutlines(store),
            cohere=CohereProvider(cohere_clients, settings, redis) if cohere_clients else None,
            memory=ConversationMemory(
                redis, settings.conversation_max_turns, settings.conversation_ttl_s, database=database
            ),
            metrics=TurnTimings(redis, settings.record_timings),
            database=database,
        )
        ctx["services"] = services
        background.append(asyncio.create_task(refresh_status(services, state), name="collection-status"))
        background.append(asyncio.create_task(beat(services, state, jobs_running), name="heartbeat"))
        state.history_writer = HistoryWriter(history_redis, database, consumer=state.worker_id)
        background.append(asyncio.create_task(state.history_writer.run(), name="history-writer"))
        background.append(
            asyncio.create_task(record_unrecorded_periodically(redis, settings.provider), name="history-unrecorded")
        )
        background.append(
            asyncio.create_task(
                purge_history_periodically(database, settings.history_retention_days), name="history-retention"
            )
        )
        indexing = asyncio.create_task(index_until_ready(services, state), name="first-index")
        background.append(indexing)
        if settings.reindex_every_s > 0:
            background.append(
                asyncio.create_task(schedule_reindexes(services, settings.reindex_every_s), name="reindex-schedule")
            )
        if wait_for_index:
            await indexing
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

    return on_startup, on_shutdown
