"""Saving a reader's rating of one of their turns, also of a turn that has only just ended.

A turn's history row is written by a worker a moment after its ``done`` (shared/history.py), so a reader
quick to rate would otherwise be told the turn is unknown. When the row is missing but Redis still shows
the turn as this reader's and ended, the rating waits for the row, up to ``ROW_WAIT_S``.
"""

from __future__ import annotations

import asyncio

from pydantic import ValidationError

from gateway.services import GatewayServices
from shared import keys
from shared.db.feedback import save_feedback
from shared.jobs import TurnJob
from shared.protocol import FeedbackFields

ROW_WAIT_S = 3.0  # the writer takes a fraction of a second; longer means the database is struggling
ROW_POLL_S = 0.1


async def save_rating(services: GatewayServices, reader_id: str, turn_id: str, fields: FeedbackFields) -> bool:
    """Record the rating; False when the turn is not one of the reader's finished turns."""
    sessions = await services.database.ready_sessions()
    if await save_feedback(sessions, reader_id, turn_id, fields):
        return True
    if not await _ended_turn_of(services, reader_id, turn_id):
        return False
    try:
        async with asyncio.timeout(ROW_WAIT_S):
            while True:
                # the row comes from a worker's transaction: there is no event in this process to wait on
                await asyncio.sleep(ROW_POLL_S)
                if await save_feedback(sessions, reader_id, turn_id, fields):
                    return True
    except TimeoutError:
        return False


async def _ended_turn_of(services: GatewayServices, reader_id: str, turn_id: str) -> bool:
    async with services.redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.turn_ask(turn_id))
        pipe.exists(keys.turn_ended(turn_id))
        raw_ask, ended = await pipe.execute()
    if raw_ask is None or not ended:
        return False
    try:
        return TurnJob.model_validate_json(raw_ask).reader_id == reader_id
    except ValidationError:
        return False
