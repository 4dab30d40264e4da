"""Records the turns whose recorder died: a process killed after writing a turn's terminal event and before
queuing its history record leaves the turn marked unrecorded (shared/history.py). Each worker sweeps the
marks now and then and queues the record of every turn marked for longer than ``GRACE_S``, read from the
turn's stream as its client saw it. Queuing clears the mark atomically, so a recorder that was only slow
and a sweep never both queue a turn; two workers sweeping at once cannot double it either.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.ended_turns import Provider, queue_record_from_stream
from shared.history import unrecorded_since

logger = logging.getLogger(__name__)

GRACE_S = 30.0  # far longer than a live recorder takes between the terminal event and its record
SWEEP_EVERY_S = 10.0
BATCH = 500  # per sweep: orphans are rare, and a batch that keeps failing must not hold the sweep


async def record_unrecorded(redis: Redis, provider: Provider, grace_s: float = GRACE_S) -> int:
    """Queue the records of the turns marked unrecorded for more than ``grace_s``; how many this call queued."""
    seconds, _micros = await redis.time()
    queued = 0
    for turn_id in await unrecorded_since(redis, seconds - grace_s, BATCH):
        queued += await queue_record_from_stream(redis, turn_id, provider)
    if queued:
        logger.info("queued the history records of %d turns whose recorder had stopped", queued)
    return queued


async def record_unrecorded_periodically(redis: Redis, provider: Provider) -> None:
    while True:
        await asyncio.sleep(SWEEP_EVERY_S)
        try:
            await record_unrecorded(redis, provider, GRACE_S)
        except (RedisError, OSError) as exc:
            logger.warning("the sweep for unrecorded turns failed (%s)", type(exc).__name__)
        except Exception:
            logger.exception("the sweep for unrecorded turns failed")  # and runs again: records depend on it
