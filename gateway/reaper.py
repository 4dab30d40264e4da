"""Ending the turns of a worker that died (SIGKILL, OOM): within seconds, not arq's in-progress expiry.

Each worker lists its turns in flight in Redis and keeps a heartbeat key with a short TTL. This loop,
run by every gateway process, looks for workers whose heartbeat has expired and ends their turns with
``worker_lost``. Ending a turn goes through the same exactly-once append as everything else, so several
gateways (or a late worker) cannot produce a second terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys
from shared.protocol import ErrorCode, ErrorEvent
from shared.turn_events import TurnEventWriter, TurnStreamLost
from shared.waiting import wait_event

logger = logging.getLogger(__name__)

REAP_INTERVAL_S = 1.0


async def reap_lost_workers(redis: Redis, events: TurnEventWriter) -> int:
    """One pass; returns how many turns it ended."""
    ended = 0
    for raw_id in await redis.smembers(keys.WORKERS_WITH_TURNS):  # type: ignore[misc]
        worker_id = raw_id.decode()
        if await redis.exists(keys.worker_heartbeat(worker_id)):
            continue
        turns = await redis.smembers(keys.worker_turns(worker_id))  # type: ignore[misc]
        for raw_turn in turns:
            turn_id = raw_turn.decode()
            error = ErrorEvent(
                turn_id=turn_id,
                code=ErrorCode.WORKER_LOST,
                message="the worker answering this question stopped; please ask again",
            )
            # arq does not run the job again: a turn's job has one try (worker/runtime/arq_worker.py).
            with contextlib.suppress(TurnStreamLost):
                if await events.append(turn_id, [error]) is not None:
                    ended += 1
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.worker_turns(worker_id))
            pipe.srem(keys.WORKERS_WITH_TURNS, worker_id)
            await pipe.execute()
        if turns:
            logger.warning("worker %s is gone; ended %d of its turns with worker_lost", worker_id, len(turns))
    return ended


async def run_reaper(
    redis: Redis, events: TurnEventWriter, stop: asyncio.Event, interval_s: float = REAP_INTERVAL_S
) -> None:
    """Until ``stop`` is set. A stop event rather than cancellation alone: a cancellation that lands inside
    a Redis call can be swallowed by the client (seen in tests), and the gateway's shutdown then waited on
    this task for ever."""
    while not stop.is_set():
        try:
            await reap_lost_workers(redis, events)
        except (RedisError, OSError) as exc:
            logger.debug("reaper pass skipped: %s", type(exc).__name__)
        await wait_event(stop, interval_s)
