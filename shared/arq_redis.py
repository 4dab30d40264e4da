"""arq's Redis client as every process of this service builds it: on ``REDIS_URL``, our queue, JSON jobs.

The gateway enqueues turns, the worker runs them and ``tutor-reindex`` requests re-indexes, so all three must
agree on the queue name and the job format; they differ only in how their connections behave under
failure, passed as ``pool_options``. Connections are made lazily: a process starts while Redis is still
starting. No ``socket_timeout`` unless a caller needs one: with one, redis-py 5 sends each command under
``asyncio.wait_for``, which on Python 3.11 can lose a cancellation; waits that need a limit use
``asyncio.timeout``.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from shared import keys
from shared.jobs import job_deserializer, job_serializer
from shared.settings import Settings

CONNECT_TIMEOUT_S = 2


def arq_redis(settings: Settings, **pool_options: Any) -> ArqRedis:
    """A pooled ``ArqRedis`` on ``settings``' Redis; ``pool_options`` go to redis-py's ``ConnectionPool``."""
    pool = ConnectionPool.from_url(
        settings.effective_redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S, **pool_options
    )
    return ArqRedis(
        connection_pool=pool,
        job_serializer=job_serializer,
        job_deserializer=job_deserializer,
        default_queue_name=keys.QUEUE_NAME,
    )
