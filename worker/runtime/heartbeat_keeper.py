"""Keeps the worker's heartbeat key alive from a thread of its own, so that a busy event loop is not taken for a
dead worker.

The event loop writes the heartbeat (``worker/runtime/heartbeat.py``), but on a starved CPU, with a hundred
streams in flight, it can get round to it seconds late: past the key's TTL, the gateway's reaper takes the
worker for dead and hands on or ends its turns. This thread renews the key's TTL every ``interval_s`` on its own
connection, needing only a moment of CPU and the GIL, so the key lapses when the process is gone (or stopped),
not when its loop is merely slow. A loop silent for longer than ``loop_silence_limit_s`` is taken for stuck:
the thread stops renewing, and the key lapses as if the worker had died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class HeartbeatKeeper:
    def __init__(
        self,
        redis_url: str,
        key: str,
        *,
        ttl_s: int,
        interval_s: float,
        loop_silence_limit_s: float,
        loop_beaten_at: Callable[[], float | None],
    ) -> None:
        """``loop_beaten_at``: when (``time.monotonic()``) the event loop last wrote the heartbeat; None before
        its first write."""
        self._redis_url = redis_url
        self._key = key
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._limit_s = loop_silence_limit_s
        self._loop_beaten_at = loop_beaten_at
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat-keeper", daemon=True)
        self.renewals = 0  # TTLs renewed (tests wait on it)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and wait for a renewal in progress (blocking: call it from a thread, not the loop)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        # EXPIRE, not SET: it never brings back a key that lapsed or was deleted at shutdown; only the loop
        # writes what the heartbeat says.
        client = Redis.from_url(self._redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            while not self._stopped.wait(self._interval_s):
                beaten_at = self._loop_beaten_at()
                if beaten_at is None or time.monotonic() - beaten_at > self._limit_s:
                    continue
                try:
                    if client.expire(self._key, self._ttl_s):
                        self.renewals += 1
                except (RedisError, OSError) as exc:
                    logger.debug("heartbeat keeper could not renew: %s", type(exc).__name__)
        finally:
            client.close()
