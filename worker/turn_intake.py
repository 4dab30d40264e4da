"""The thread that takes new turns off the intake list and claims them, whatever the event loop is doing.

The gateway pushes each turn's job id on ``keys.TURN_INTAKE`` in the call that enqueues it. Measured at 100
turns in flight (bench/hop_relay.py, stage timestamps), a blocking pop made by the busy event loop woke
~4.4 ms (p50; p90 18 ms) after Redis answered it, and the claim that followed took another ~2 ms: each
waited for the loop to come round. Here both are made by a thread on a connection of its own, which sleeps
in the socket read without holding the GIL; only the start of the claimed jobs goes to the loop.

An id popped here whose claim fails was started elsewhere (by a poll) or has ended. If this process dies
between the pop and the claim, the job is still in arq's queue, where the next poll of any worker finds it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, cast

from redis import Redis
from redis.exceptions import RedisError

from shared import keys
from worker.job_claims import CLAIM_JOBS, ClaimedJob, claim_args, claim_keys, parse_claims

logger = logging.getLogger(__name__)

# How long one blocking pop waits before it is made again; stopping does not wait for it (CLIENT UNBLOCK).
INTAKE_BLOCK_S = 5.0


class TurnIntake:
    def __init__(
        self,
        redis_url: str,
        *,
        queue_name: str,
        in_progress_ttl_s: float,
        room: Callable[[], int],
        start: Callable[[list[ClaimedJob]], object],
    ) -> None:
        """``room()`` says how many more jobs the worker takes now (read from this thread); ``start`` is
        called from this thread with the claimed jobs and must hand them to the event loop."""
        self._redis_url = redis_url
        self._queue_name = queue_name
        self._in_progress_ttl_s = in_progress_ttl_s
        self._room = room
        self._start = start
        self._stopping = threading.Event()
        self.room_freed = threading.Event()  # set by the loop when a job ends
        self.listening = threading.Event()  # connected, and taking turns
        # Claimed here and handed to the loop, which has not counted them yet: not room any more.
        self._handed = 0
        self._handed_lock = threading.Lock()
        self._client_id: int | None = None
        self._thread = threading.Thread(target=self._run, name="turn-intake", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop taking turns: interrupt a pop in progress and wait for the thread (blocking: call it from a
        thread of the loop's executor)."""
        self._stopping.set()
        self.room_freed.set()
        client_id = self._client_id
        if client_id is not None:
            try:
                with Redis.from_url(self._redis_url, socket_timeout=2, socket_connect_timeout=2) as client:
                    client.client_unblock(client_id)
            except (RedisError, OSError) as exc:
                logger.debug("could not interrupt the intake's pop: %s", type(exc).__name__)
        self._thread.join(timeout=INTAKE_BLOCK_S + 5)

    def counted(self, jobs: int) -> None:
        """The loop counted ``jobs`` handed to it (called on the loop)."""
        with self._handed_lock:
            self._handed -= jobs

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            client = Redis.from_url(self._redis_url, socket_timeout=INTAKE_BLOCK_S + 5, socket_connect_timeout=5)
            try:
                self._client_id = int(cast(int, client.client_id()))
                claim = client.register_script(CLAIM_JOBS)
                backoff = 0.1
                self.listening.set()
                while not self._stopping.is_set():
                    self._take(client, claim)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "turn intake lost Redis (%s); the poll starts turns until it is back", type(exc).__name__
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.listening.clear()
                self._client_id = None
                client.close()

    def _take(self, client: Redis, claim: Any) -> None:
        room = self._room() - self._handed
        if room <= 0:
            self.room_freed.clear()
            if self._room() - self._handed <= 0:  # a job may have ended between the look and the clear
                self.room_freed.wait(INTAKE_BLOCK_S)
            return
        popped = client.blmpop(INTAKE_BLOCK_S, 1, keys.TURN_INTAKE, direction="LEFT", count=room)  # type: ignore[arg-type]
        if not popped or self._stopping.is_set():
            return  # popped while stopping: the ids are still in arq's queue for the poll
        _list, raw_ids = popped
        reply = claim(
            keys=claim_keys(self._queue_name),
            args=claim_args([raw.decode() for raw in raw_ids], self._in_progress_ttl_s),
        )
        if reply:
            claims = parse_claims(reply)
            with self._handed_lock:
                self._handed += len(claims)
            self._start(claims)
