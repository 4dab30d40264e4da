"""Saving a reader's rating of one of their turns, also of a turn that has only just ended.

A turn's history row is written by a worker within a second of its ``done`` (shared/history.py), so a reader
quick to rate would otherwise be told the turn is unknown. When the row is missing but Redis still shows
the turn as this reader's and ended, the rating waits for the row, up to ``ROW_WAIT_S``.
"""

from __future__ import annotations

import asyncio

from pydantic import ValidationError
from redis.exceptions import RedisError

from gateway.services import GatewayServices
from shared import keys
from shared.db.feedback import save_feedback
from shared.jobs import TurnJob
from shared.protocol import FeedbackFields

ROW_WAIT_S = 3.0  # the writer takes a second at most; longer means the database is struggling
FIRST_POLL_S = 0.1  # then twice as long each time, up to 1 s: a row that never comes costs a few queries


async def save_rating(services: GatewayServices, reader_id: str, turn_id: str, fields: FeedbackFields) -> bool:
    """Record the rating; False when the turn is not one of the reader's finished turns."""
    sessions = await services.database.ready_sessions()
    if await save_feedback(sessions, reader_id, turn_id, fields):
        return True
    if not await _ended_turn_of(services, reader_id, turn_id):
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ROW_WAIT_S
    delay = FIRST_POLL_S
    # Only the waits are bounded: a save that has begun always finishes, so its answer is the truth.
    while (left := deadline - loop.time()) > 0:
        # the row comes from a worker's transaction: there is no event in this process to wait on
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 1.0)
        if await save_feedback(sessions, reader_id, turn_id, fields):
            return True
    return False


async def _ended_turn_of(services: GatewayServices, reader_id: str, turn_id: str) -> bool:
    """Whether Redis shows the turn as the reader's and ended (False when Redis cannot say: no wait then)."""
    try:
        async with services.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.turn_ask(turn_id))
            pipe.exists(keys.turn_ended(turn_id))
            raw_ask, ended = await pipe.execute()
    except (RedisError, OSError):
        return False
    if raw_ask is None or not ended:
        return False
    try:
        return TurnJob.model_validate_json(raw_ask).reader_id == reader_id
    except ValidationError:
        return False
