"""When the worker ends a turn, its record goes into the history queue (shared/history.py): one Redis call
after the terminal event, never a wait on the database. A turn ended by someone else (a cancel, the gateway's
timeout, the reaper) is recorded by them (shared/ended_turns.py): one record per turn."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from shared.ended_turns import queue_record_from_stream
from shared.history import CitationRecord, TurnRecord, enqueue_record
from shared.jobs import TurnJob
from shared.protocol import ErrorCode
from shared.settings import Settings
from shared.turn_events import TurnStreamLost
from worker.turns.event_sink import TurnEventSink

logger = logging.getLogger(__name__)


def turn_record(job: TurnJob, sink: TurnEventSink, provider: str, finished_at: float) -> TurnRecord:
    first_delta_ms = None
    if sink.first_delta_at is not None:
        first_delta_ms = round(max(0.0, sink.first_delta_at - job.enqueued_at) * 1000, 3)
    return TurnRecord(
        turn_id=job.turn_id,
        conversation_id=job.conversation_id,
        reader_id=job.reader_id,
        question=job.question,
        selected_text=job.selected_text,
        answer=sink.answer,
        sources=sink.sources,
        citations=[
            CitationRecord(start=c.start, end=c.end, text=c.text, source_ids=c.source_ids) for c in sink.citations
        ],
        provider="cohere" if provider == "cohere" else "offline",
        grounded=sink.grounded,
        status=sink.outcome or ErrorCode.UNAVAILABLE,  # none: Redis lost the turn's stream
        first_delta_ms=first_delta_ms,
        total_ms=round(max(0.0, finished_at - job.enqueued_at) * 1000, 3),
        asked_at=job.enqueued_at,
        finished_at=finished_at,
    )


def ended_here(sink: TurnEventSink) -> bool:
    """Whether this worker's terminal event ended the turn, or Redis lost the turn (nobody else can end it)."""
    return sink.outcome is not None or isinstance(sink.error, TurnStreamLost)


async def record_turn(
    redis: Redis, settings: Settings, job: TurnJob, sink: TurnEventSink, *, second_try: bool = False
) -> None:
    """Queue the record of a turn this worker ended. A second try's sink lacks what its first try sent:
    its record is read from the turn's stream."""
    if not ended_here(sink):
        return
    if second_try and sink.outcome is not None:
        await queue_record_from_stream(redis, job.turn_id, settings.provider)
        return
    try:
        if not await enqueue_record(redis, turn_record(job, sink, settings.provider, time.time())):
            logger.info("turn %s: its history record was queued by a sweep first", job.turn_id)
    except Exception as exc:  # Redis unreachable: the turn's mark stays, and a sweep records it once it is back
        logger.warning("turn %s: its history record could not be queued (%s)", job.turn_id, type(exc).__name__)
