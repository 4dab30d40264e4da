"""Ending or handing on the turns of a worker that died (SIGKILL, OOM): within seconds, not arq's in-progress expiry.

Each worker lists its turns in flight in Redis and keeps a heartbeat key with a short TTL. This loop, run by every
gateway process, looks for workers that stopped proving they are alive (shared/worker_turns.py: the heartbeat
expired and no turn listed within its TTL): their turns that had sent no delta yet are handed to another worker,
the others end with ``worker_lost``. Ending a turn goes through the same exactly-once append as everything else,
so several gateways (or a late worker) cannot produce a second terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from shared import keys
from shared.ended_turns import Provider, end_turn
from shared.protocol import ErrorCode, ErrorEvent
from shared.second_try import RETRIED_MARK_TTL_S, earlier_try
from shared.turn_events import TurnEventWriter, TurnStreamLost
from shared.waiting import wait_event
from shared.worker_turns import worker_alive

logger = logging.getLogger(__name__)

REAP_INTERVAL_S = 1.0


async def reap_lost_workers(redis: Redis, events: TurnEventWriter, provider: Provider) -> int:
    """One pass; returns how many turns it ended (each recorded in history: its worker cannot)."""
    ended = 0
    for raw_id in await redis.smembers(keys.WORKERS_WITH_TURNS):  # type: ignore[misc]
        worker_id = raw_id.decode()
        if await worker_alive(redis, worker_id):
            continue
        turns = await redis.smembers(keys.worker_turns(worker_id))  # type: ignore[misc]
        taken = retried = 0
        for raw_turn in turns:
            turn_id = raw_turn.decode()
            if not await redis.srem(keys.worker_turns(worker_id), turn_id):  # type: ignore[misc]
                continue  # another gateway's reaper took this one (it would find it handed on, and end it)
            taken += 1
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
        if taken:
            logger.warning(
                "worker %s is gone; %d of its turns handed to another worker, %d ended with worker_lost",
                worker_id,
                retried,
                taken - retried,
            )
    return ended


async def hand_on(redis: Redis, turn_id: str) -> bool:
    """Give a dead worker's turn to another one if nothing of the answer was sent yet (shared/second_try.py):
    mark it ``retried`` (once per turn), take it from its try (delete its owner token) and free arq's in-progress
    key, so that arq's next poll on a live worker runs the job's second try at once instead of after the job's
    timeout. One transaction watching the turn's stream: a worker that was only stalled and writes its first
    delta meanwhile keeps its turn (the check runs again and finds the delta)."""
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(keys.turn_events(turn_id), keys.turn_retried(turn_id))
                if (await earlier_try(pipe, turn_id)).sent_answer:
                    return False
                if await pipe.exists(keys.turn_retried(turn_id)):
                    return False  # handed on once already: its second worker died too
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                pipe.set(keys.turn_retried(turn_id), "1", ex=RETRIED_MARK_TTL_S)
                pipe.delete(keys.turn_owner(turn_id), in_progress_key_prefix + turn_id)
                await pipe.execute()
                return True
            except WatchError:
                continue  # the turn's stream changed between the check and the hand-over: check again


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
