"""Ending a turn from outside its worker, and the history record of a turn read back from its stream.

Every accepted ask has a history row, whoever ended it. The party whose terminal event the append script
accepted (shared/turn_events.py: exactly one per turn) queues the turn's record: the worker for what it
answered or refused itself (worker/turns/records.py), the gateway for a cancel, a timeout, a turn it could
not queue, or the reaper's ``worker_lost``; and if that party died first, a worker's sweep
(worker/history/unrecorded.py), never both. Those without a worker to say what happened have their record
read from the turn's stream (what the client saw, up to the terminal event: nothing is appended after it)
and from the ask kept beside it at acceptance (``keys.turn_ask``).
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import ValidationError
from redis.asyncio import Redis

from shared import keys
from shared.history import CitationRecord, TurnRecord, enqueue_record, forget_unrecorded
from shared.jobs import TurnJob
from shared.protocol import (
    CitationEvent,
    DeltaEvent,
    DoneEvent,
    ErrorCode,
    ErrorEvent,
    SourcesEvent,
    server_event_adapter,
)
from shared.turn_events import TurnEventWriter

logger = logging.getLogger(__name__)

Provider = Literal["cohere", "offline"]


async def end_turn(redis: Redis, events: TurnEventWriter, error: ErrorEvent, provider: Provider) -> bool:
    """Write ``error`` as the turn's terminal event; if it is (the turn had not ended), queue the turn's
    record. Raises ``TurnStreamLost`` like ``TurnEventWriter.append``; returns whether this call ended it."""
    assert error.turn_id is not None
    if await events.append(error.turn_id, [error]) is None:
        return False  # ended already: whoever ended it queued the record
    await queue_record_from_stream(redis, error.turn_id, provider)
    return True


async def queue_record_from_stream(redis: Redis, turn_id: str, provider: Provider) -> bool:
    """Queue the record of an ended turn as its stream shows it, unless it is queued already; whether it was.
    Never raises: the turn has ended for its client whatever becomes of its record (a record not queued for
    a fault stays marked, and a worker's sweep tries again)."""
    try:
        record = await record_from_stream(redis, turn_id, provider)
        if record is None:
            logger.warning("turn %s: no record of its ask; its history row is lost", turn_id)
            await forget_unrecorded(redis, turn_id)
            return False
        return await enqueue_record(redis, record)
    except Exception as exc:
        logger.warning("turn %s: its history record could not be queued (%s)", turn_id, type(exc).__name__)
        return False


async def record_from_stream(redis: Redis, turn_id: str, provider: Provider) -> TurnRecord | None:
    """The record of an ended turn from its stream and its ask; None when Redis no longer has the ask, or
    the stream has no terminal event."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.turn_ask(turn_id))
        pipe.xrange(keys.turn_events(turn_id))
        raw_ask, entries = await pipe.execute()
    if raw_ask is None:
        return None
    try:
        job = TurnJob.model_validate_json(raw_ask)
    except ValidationError:
        return None
    answer: list[str] = []
    sources: list[SourcesEvent] = []
    citations: list[CitationRecord] = []
    first_delta_ms: float | None = None
    ended_at = job.enqueued_at
    status: Literal["done"] | ErrorCode | None = None
    grounded: bool | None = None
    for entry_id, fields in entries:
        at = _entry_time(entry_id)
        event = server_event_adapter.validate_json(fields[b"e"])
        if isinstance(event, DeltaEvent):
            answer.append(event.text)
            if first_delta_ms is None:
                first_delta_ms = _ms_between(job.enqueued_at, at)
        elif isinstance(event, SourcesEvent):
            sources.append(event)
        elif isinstance(event, CitationEvent):
            citations.append(
                CitationRecord(start=event.start, end=event.end, text=event.text, source_ids=event.source_ids)
            )
        elif isinstance(event, DoneEvent | ErrorEvent):
            ended_at = at
            if isinstance(event, DoneEvent):
                status, grounded, provider = "done", event.grounded, event.provider
                answer = [event.answer]
            else:
                status = event.code
            break
    if status is None:
        return None  # not ended: its record is not ours to write
    return TurnRecord(
        turn_id=turn_id,
        conversation_id=job.conversation_id,
        reader_id=job.reader_id,
        question=job.question,
        selected_text=job.selected_text,
        answer="".join(answer),
        sources=sources[-1].sources if sources else [],
        citations=citations,
        provider=provider,
        status=status,
        grounded=grounded,
        first_delta_ms=first_delta_ms,
        total_ms=_ms_between(job.enqueued_at, ended_at),
        asked_at=job.enqueued_at,
        finished_at=max(ended_at, job.enqueued_at),
    )


def _entry_time(entry_id: bytes) -> float:
    """A stream entry's id starts with Redis's clock in milliseconds."""
    return int(entry_id.split(b"-", 1)[0]) / 1000


def _ms_between(start: float, end: float) -> float:
    return round(max(0.0, end - start) * 1000, 3)
