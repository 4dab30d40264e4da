"""Which turns each worker is answering, kept in Redis for the gateway's reaper (gateway/reaper.py), and
whether the worker is alive.

A worker is alive while its heartbeat key lives, and also for ``HEARTBEAT_TTL_S`` after it listed a turn:
Redis keeps nothing across a restart, so the heartbeat is gone until the worker's next beat, and a turn the
worker lists meanwhile must not make it look dead (its reader would get ``worker_lost``, or the turn would be
handed on while this worker still answers it).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared import keys
from shared.health import HEARTBEAT_TTL_S


def list_turn(transaction: Pipeline, worker_id: str, turn_id: str) -> None:
    """Queue on the worker's transaction: the turn under the worker, and the worker's sign of life."""
    transaction.sadd(keys.worker_turns(worker_id), turn_id)
    transaction.sadd(keys.WORKERS_WITH_TURNS, worker_id)
    transaction.set(keys.worker_listed_turn(worker_id), "1", ex=HEARTBEAT_TTL_S)


async def worker_alive(redis: Redis, worker_id: str) -> bool:
    """Its heartbeat is current, or it listed a turn within the heartbeat's TTL."""
    return bool(await redis.exists(keys.worker_heartbeat(worker_id), keys.worker_listed_turn(worker_id)))
