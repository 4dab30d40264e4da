"""Ending or handing on the turns of a worker that died (SIGKILL, OOM): within seconds, not arq's in-progress expiry.

Each worker lists its turns in flight in Redis and keeps a heartbeat key with a short TTL. This loop, run by every
gateway process, looks for workers whose heartbeat has expired: their turns that had sent no delta yet are handed
to another worker, the others end with ``worker_lost``. Ending a turn goes through the same exactly-once append as
everything else, so several gateways (or a late worker) cannot produce a second terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared import keys
from shared.ended_turns import Provider, end_turn
from shared.protocol import ErrorCode, ErrorEvent
from shared.second_try import RETRIED_MARK_TTL_S, earlier_try
from shared.turn_events import TurnEventWriter, TurnStreamLost
from shared.waiting import wait_event

logger = logging.getLogger(__name__)

REAP_INTERVAL_S = 1.0


async def reap_lost_workers(redis: Redis, events: TurnEventWriter, provider: Provider) -> int:
    """One pass; returns how many turns it ended (each recorded in history: its worker cannot)."""
    ended = 0
    for raw_id in await redis.smembers(keys.WORKERS_WITH_TURNS):  # type: ignore[misc]
        worker_id = raw_id.decode()
        if await redis.exists(keys.worker_heartbeat(worker_id)):
            continue
        turns = await redis.smembers(keys.worker_turns(worker_id))  # type: ignore[misc]
        retried = 0
        for raw_turn in turns:
            turn_id = raw_turn.decode()
            if await hand_on(redis, turn_id):
                retried += 1
                continue
            error = ErrorEvent(
                turn_id=turn_id,
                code=ErrorCode.WORKER_LOST,
                message="the worker answering this question stopped; please ask again",
            )
            # a second try (if arq ever ran one: its in-progress key lapses with the job's timeout) finds the
            # turn ended and stops at once (worker/turns/turn.py)
            with contextlib.suppress(TurnStreamLost):
                if await end_turn(redis, events, error, provider):
                    ended += 1
        async with redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.worker_turns(worker_id))
            pipe.srem(keys.WORKERS_WITH_TURNS, worker_id)
            await pipe.execute()
        if turns:
            logger.warning(
                "worker %s is gone; %d of its turns handed to another worker, %d ended with worker_lost",
                worker_id,
                retried,
                len(turns) - retried,
            )
    return ended


async def hand_on(redis: Redis, turn_id: str) -> bool:
    """Give a dead worker's turn to another one if nothing of the answer was sent yet (shared/second_try.py):
    mark it ``retried`` (once per turn) and free arq's in-progress key, so that arq's next poll on a live worker
    runs the job's second try at once instead of after the job's timeout."""
    if (await earlier_try(redis, turn_id)).sent_answer:
        return False
    if not await redis.set(keys.turn_retried(turn_id), "1", nx=True, ex=RETRIED_MARK_TTL_S):
        return False  # handed on once already: its second worker died too
    await redis.delete(in_progress_key_prefix + turn_id)
    return True


async def run_reaper(
    redis: Redis,
    events: TurnEventWriter,
    provider: Provider,
    stop: asyncio.Event,
    interval_s: float = REAP_INTERVAL_S,
) -> None:
    """Until ``stop`` is set. A stop event rather than cancellation alone: a cancellation that lands inside
    a Redis call can be swallowed by the client (seen in tests), and the gateway's shutdown then waited on
    this task for ever."""
    while not stop.is_set():
        try:
            await reap_lost_workers(redis, events, provider)
        except (RedisError, OSError) as exc:
            logger.debug("reaper pass skipped: %s", type(exc).__name__)
        await wait_event(stop, interval_s)
