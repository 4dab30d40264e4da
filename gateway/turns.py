"""Starting and cancelling turns: the only things the gateway asks of the worker, all through Redis."""

from __future__ import annotations

import logging
import time
import uuid

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss
from arq.utils import timestamp_ms

from shared import keys
from shared.jobs import RUN_TURN, TurnJob
from shared.protocol import AcceptedEvent, AskFrame, ErrorCode, ErrorEvent
from shared.settings import Settings
from shared.turn_events import TurnEventWriter, TurnStreamLost

logger = logging.getLogger(__name__)

BUSY_RETRY_AFTER_S = 5.0


class TurnNotAccepted(Exception):
    def __init__(self, error: ErrorEvent) -> None:
        super().__init__(error.message)
        self.error = error


class TurnStarter:
    def __init__(self, redis: ArqRedis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self.events = TurnEventWriter(redis, settings.turn_events_ttl_s, settings.max_events_per_turn)

    async def start(self, ask: AskFrame) -> AcceptedEvent:
        """Record ``accepted`` in the turn's stream, enqueue the job and wake a worker.

        ``accepted`` is written first so the stream exists (and can be resumed) before any worker event;
        the job id is the turn id, so a duplicate enqueue of the same turn is impossible.
        """
        received = time.time()
        pending = await self._redis.zcard(keys.QUEUE_NAME)  # queued + running (arq keeps both in the set)
        if pending >= self._settings.max_pending_turns:
            # Refuse at once rather than queue an answer that would arrive too late to matter.
            raise TurnNotAccepted(
                ErrorEvent(
                    turn_id=None,
                    code=ErrorCode.BUSY,
                    message="the tutor is answering many questions right now; please ask again shortly",
                    retry_after=BUSY_RETRY_AFTER_S,
                )
            )
        turn_id = uuid.uuid4().hex
        conversation_id = ask.conversation_id or uuid.uuid4().hex
        accepted = AcceptedEvent(turn_id=turn_id, conversation_id=conversation_id)
        await self.events.append(turn_id, [accepted], create=True)
        job = TurnJob(
            turn_id=turn_id,
            conversation_id=conversation_id,
            question=ask.question,
            selected_text=ask.selected_text,
            enqueued_at=received,
        )
        enqueued = await self._redis.enqueue_job(
            RUN_TURN,
            job.model_dump(mode="json"),
            _job_id=turn_id,
            _queue_name=keys.QUEUE_NAME,
            _expires=self._settings.turn_timeout_s,
        )
        if enqueued is None:  # only possible if the id already existed: refuse rather than run twice
            error = ErrorEvent(turn_id=turn_id, code=ErrorCode.INTERNAL, message="the turn could not start")
            await self.events.append(turn_id, [error])
            raise TurnNotAccepted(error)
        await self._redis.publish(keys.WAKE_CHANNEL, b"job")
        return accepted

    async def exists(self, turn_id: str) -> bool:
        return bool(await self._redis.exists(keys.turn_events(turn_id)))

    async def cancel(self, turn_id: str, message: str = "the turn was cancelled") -> bool:
        """End the turn with ``cancelled`` (unless it already ended) and stop its job.

        The terminal event is written here, not left to the worker, so the client gets its answer at
        once even when the job has not started yet (arq then never runs it) or its worker is gone.
        """
        try:
            ended = await self.events.append(
                turn_id, [ErrorEvent(turn_id=turn_id, code=ErrorCode.CANCELLED, message=message)]
            )
        except TurnStreamLost:
            ended = None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(abort_jobs_ss, {turn_id: timestamp_ms()})
            pipe.publish(keys.WAKE_CHANNEL, b"abort")
            await pipe.execute()
        logger.info("turn %s cancelled (%s)", turn_id, "ended now" if ended else "had already ended")
        return ended is not None
