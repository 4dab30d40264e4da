"""Keeps the worker's heartbeat key alive from a thread, whatever the event loop is doing.

The gateway's reaper ends a worker's turns with ``worker_lost`` when its heartbeat key expires
(``HEARTBEAT_TTL_S``). The beat itself is written by the event loop, and an overloaded loop — hundreds
of streams on a CPU it shares — can take longer than the TTL to get to it: under ``bench/`` load the
reaper took a busy, healthy worker for a dead one and ended its turns. This thread re-sets the key with
the last beat the loop produced every ``interval_s``, on its own connection, so the key expires only
when the process is really gone (or cannot reach Redis).
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class HeartbeatKeeper:
    def __init__(self, redis_url: str, key: str, ttl_s: int, interval_s: float) -> None:
        self._redis_url = redis_url
        self._key = key
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._payload: str | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat-keeper", daemon=True)

    def update(self, payload: str) -> None:
        """The latest beat (JSON), written by the event loop; the thread repeats it."""
        self._payload = payload

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing (before the key is deleted on shutdown), waiting for a write in progress."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval_s + 5)

    def _run(self) -> None:
        client = Redis.from_url(self._redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            while not self._stopped.wait(self._interval_s):
                payload = self._payload
                if payload is None:
                    continue
                try:
                    client.set(self._key, payload, ex=self._ttl_s)
                except (RedisError, OSError) as exc:
                    logger.debug("heartbeat keeper could not write: %s", type(exc).__name__)
        finally:
            client.close()
