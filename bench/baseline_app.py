"""The baseline of the benchmarks: the same pipeline in one process, with no queue and no event bus.

A FastAPI app speaking the same wire protocol on ``/ws/chat`` that answers each ask right in the socket's
own task: ``worker.turns.turn.answer_turn`` (conversation memory in Redis, Cohere embed, Qdrant search, rerank,
the streamed chat, delta coalescing by ``worker.turns.event_sink``), with the sink writing frames straight to the
socket instead of to a Redis stream. What it lacks is exactly the architecture under test: the arq queue,
the wake-up, the turn streams, the relay. So (service minus baseline) is the cost of that architecture.

Not part of the product: no resume, no cancel, no limits. ``python -m bench.baseline_app`` reads the same
environment as the service (``PORT``, ``DATA_DIR``, ``REDIS_URL``, ``COHERE_*``) and indexes the book
into its own embedded Qdrant under ``DATA_DIR``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from redis.asyncio import Redis

from shared.jobs import TurnJob
from shared.logs import configure_logging
from shared.protocol import AcceptedEvent, AskFrame, ErrorCode, ErrorEvent, _Event, bad_frame, client_frame_adapter
from shared.settings import Settings, load_settings
from shared.turn_events import TurnAppend
from worker.cohere.client import build_cohere_clients
from worker.cohere.failures import ProviderFailure
from worker.cohere.provider import CohereProvider
from worker.knowledge.book_outlines import BookOutlines
from worker.knowledge.standalone_indexing import ensure_indexed
from worker.knowledge.store import KnowledgeStore
from worker.knowledge.vocabulary import BookVocabulary
from worker.services import WorkerServices
from worker.turns.conversation import ConversationMemory
from worker.turns.event_sink import EventBatcher
from worker.turns.timings import TurnTimings
from worker.turns.turn import answer_turn

logger = logging.getLogger(__name__)


class SocketEventWriter:
    """Stands in for ``TurnEventWriter``: events go to the socket at once. Ids look like stream ids (this
    process's clock in ms, then a sequence number), so the load generator measures them the same way."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._last_ms = 0
        self._seq = 0

    def _next_id(self) -> str:
        now_ms = int(time.time() * 1000)
        if now_ms > self._last_ms:
            self._last_ms, self._seq = now_ms, 0
        else:
            self._seq += 1
        return f"{self._last_ms}-{self._seq}"

    async def append(self, turn_id: str, events: Sequence[_Event]) -> list[str] | None:
        ids = []
        for event in events:
            event_id = self._next_id()
            await self._websocket.send_text(event.model_copy(update={"id": event_id}).model_dump_json())
            ids.append(event_id)
        return ids

    async def append_many(self, batch: Sequence[TurnAppend]) -> list[list[str] | None]:
        return [await self.append(part.turn_id, part.events) for part in batch]


async def answer_ask(services: WorkerServices, websocket: WebSocket, ask: AskFrame) -> None:
    turn_id = uuid.uuid4().hex
    conversation_id = ask.conversation_id or uuid.uuid4().hex
    writer = SocketEventWriter(websocket)
    await writer.append(turn_id, [AcceptedEvent(turn_id=turn_id, conversation_id=conversation_id)])
    job = TurnJob(
        turn_id=turn_id,
        conversation_id=conversation_id,
        question=ask.question,
        selected_text=ask.selected_text,
        enqueued_at=time.time(),
    )
    sink = EventBatcher(writer).sink(turn_id)  # type: ignore[arg-type]  # duck-typed writer
    try:
        await answer_turn(services, job, sink)
    except ProviderFailure as failure:
        await sink.fail(ErrorEvent(turn_id=turn_id, code=failure.code, message=failure.message))
    except WebSocketDisconnect:
        raise
    except Exception:
        logger.exception("baseline turn failed")
        await sink.fail(ErrorEvent(turn_id=turn_id, code=ErrorCode.INTERNAL, message="the turn failed"))


def create_baseline_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url)
        parts = build_cohere_clients(settings)
        cohere = CohereProvider(parts, settings, redis) if parts else None
        store = await KnowledgeStore.open(settings)
        await ensure_indexed(store, settings, cohere)
        app.state.services = WorkerServices(
            settings=settings,
            worker_id="baseline",
            redis=redis,
            batcher=None,  # type: ignore[arg-type]  # events go to the socket: a batcher per ask (answer_ask)
            store=store,
            vocabulary=BookVocabulary(store),
            outlines=BookOutlines(store),
            cohere=cohere,
            memory=ConversationMemory(redis, settings.conversation_max_turns, settings.conversation_ttl_s),
            metrics=TurnTimings(redis, record=False),
        )
        try:
            yield
        finally:
            await store.close()
            if cohere is not None:
                await cohere.close()
            await redis.aclose()

    app = FastAPI(title="benchmark baseline: the pipeline in-process, no queue", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.websocket("/ws/chat")
    async def chat(websocket: WebSocket) -> None:
        services: WorkerServices = websocket.app.state.services
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await websocket.receive_text()
                try:
                    frame = client_frame_adapter.validate_json(text)
                except ValidationError:
                    await websocket.send_text(bad_frame("invalid frame").model_dump_json())
                    continue
                if isinstance(frame, AskFrame):
                    await answer_ask(services, websocket, frame)

    return app


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.secret_values(), "baseline")
    uvicorn.run(
        create_baseline_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
