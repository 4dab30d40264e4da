"""When a turn ends, its record goes into the history queue (shared/history.py): one Redis write after the
terminal event, never a wait on the database."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from shared.history import CitationRecord, TurnRecord, enqueue_record
from shared.jobs import TurnJob
from shared.protocol import ErrorCode
from shared.settings import Settings
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
        # refused: another party ended it first (a cancel, the gateway's timeout); none: Redis lost the turn
        grounded=sink.grounded,
        status=sink.outcome or (ErrorCode.CANCELLED if sink.ended else ErrorCode.UNAVAILABLE),
        first_delta_ms=first_delta_ms,
        total_ms=round(max(0.0, finished_at - job.enqueued_at) * 1000, 3),
        asked_at=job.enqueued_at,
        finished_at=finished_at,
    )


async def record_turn(redis: Redis, settings: Settings, job: TurnJob, sink: TurnEventSink) -> None:
    try:
        await enqueue_record(redis, turn_record(job, sink, settings.provider, time.time()))
    except Exception as exc:  # Redis gone: the turn's stream went with it, and so does its record
        logger.warning("turn %s: its history record could not be queued (%s)", job.turn_id, type(exc).__name__)
