"""The worker's heartbeat: a short-lived key saying it is alive, and ready once the book is indexed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared import keys
from shared.health import HEARTBEAT_TTL_S, WorkerHeartbeat
from shared.turn_events import TurnEventWriter
from tests.conftest import SettingsFactory
from tests.factories import SAMPLE_BOOK
from worker.knowledge.book_outlines import BookOutlines
from worker.knowledge.standalone_indexing import ensure_indexed
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.vocabulary import BookVocabulary
from worker.runtime.heartbeat import WorkerState, beat, refresh_status
from worker.services import WorkerServices
from worker.turns.conversation import ConversationMemory
from worker.turns.event_sink import EventBatcher
from worker.turns.timings import TurnTimings


@pytest.fixture
async def services(make_settings: SettingsFactory, redis: Redis) -> AsyncIterator[WorkerServices]:
    settings = make_settings(book_source=str(SAMPLE_BOOK))
    store = await KnowledgeStore.open(settings)
    yield WorkerServices(
        settings=settings,
        worker_id="w1",
        redis=redis,
        batcher=EventBatcher(TurnEventWriter(redis, 60)),
        store=store,
        vocabulary=BookVocabulary(store),
        outlines=BookOutlines(store),
        cohere=None,
        memory=ConversationMemory(redis, 6, 60),
        metrics=TurnTimings(redis, record=False),
    )
    await store.close()


async def test_the_heartbeat_says_ready_once_the_book_is_indexed(services: WorkerServices, redis: Redis) -> None:
    state = WorkerState()
    tasks = [
        asyncio.create_task(refresh_status(services, state)),
        asyncio.create_task(beat(services, state, lambda: 3)),
    ]
    try:
        await state.status_changed.wait()  # the first status: no collection yet
        await ensure_indexed(services.store, services.settings, None)
        state.indexing = False
        state.changed.set()
        await asyncio.wait_for(state.announced_ready.wait(), 10)
        key = keys.worker_heartbeat(state.worker_id)
        heartbeat = WorkerHeartbeat.model_validate_json(await redis.get(key))
        assert heartbeat.collection_ready and heartbeat.points > 0 and heartbeat.jobs_running == 3
        assert 0 < await redis.ttl(key) <= HEARTBEAT_TTL_S, "the key dies with the worker"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
