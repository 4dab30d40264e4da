"""The thread that takes new turns off the intake list and claims them, whatever the event loop is doing.

The gateway pushes each turn's job id on ``keys.TURN_INTAKE`` in the call that enqueues it. Measured at 100
turns in flight (bench/hop_relay.py, stage timestamps), a blocking pop made by the busy event loop woke
~4.4 ms (p50; p90 18 ms) after Redis answered it, and the claim that followed took another ~2 ms: each
waited for the loop to come round. Here both are made by a thread on a connection of its own, which sleeps
in the socket read without holding the GIL; only the start of the claimed jobs goes to the loop.

The pop and the claim are one round trip: the pop (BLMOVE) moves the id to this worker's held list, and the
claim is sent behind it in the same pipeline, so Redis runs it the moment it serves the pop and answers both
together. Before, the claim was a second round trip, and so a second wake-up of this thread (and a second
wait for the GIL) in every turn's hop: five alternating pairs of ``python -m bench.hop_relay --levels 100``
gave hop p50 5.3 -> 3.3 ms and p99 21 -> 15 ms (medians of the runs). The claim is made before the
reservation of a slot, so a blocked pop holds no slot the poll might need; a claim there turns out to be no
room for is given back at once.

An id popped here whose claim fails was started elsewhere (by a poll) or has ended. If this process dies
between the pop and the claim, the job is still in arq's queue, where the next poll of any worker finds it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import cast

from redis import Redis
from redis.exceptions import NoScriptError, RedisError

from shared import keys
from worker.runtime.job_claims import (
    CLAIM_POPPED,
    GIVE_BACK,
    ClaimedJob,
    claim_popped_args,
    claim_popped_keys,
    give_back_args,
    give_back_keys,
    parse_claims,
)

logger = logging.getLogger(__name__)

# How long one blocking pop waits before it is made again; stopping does not wait for it (CLIENT UNBLOCK).
INTAKE_BLOCK_S = 2.0


class TurnIntake:
    def __init__(
        self,
        redis_url: str,
        *,
        queue_name: str,
        in_progress_ttl_s: float,
        free_slots: Callable[[], int],
        reserve: Callable[[int], int],
        start: Callable[[list[ClaimedJob], int], object],
    ) -> None:
        """The worker's slots: ``free_slots()`` to size a pop, ``reserve(n)`` (the number granted) for the jobs
        it claimed. ``start(claims, reserved)`` is called from this thread and must hand the claimed jobs, with
        the slots reserved for them, to the event loop."""
        self._redis_url = redis_url
        self._queue_name = queue_name
        self._in_progress_ttl_s = in_progress_ttl_s
        self._free_slots = free_slots
        self._reserve = reserve
        self._start = start
        self._stopping = threading.Event()
        self.room_freed = threading.Event()  # set by the loop when a job ends
        self.listening = threading.Event()  # connected, and taking turns
        self._client_id: int | None = None
        self._claimer = uuid.uuid4().hex  # the token on this intake's claims, and the name of its held list
        self._held = keys.intake_held(self._claimer)
        self._unreturned: list[ClaimedJob] = []  # claims to give back, kept until Redis has taken them
        self._thread = threading.Thread(target=self._run, name="turn-intake", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def stop_taking(self) -> None:
        """Take no more turns (any thread, at once): a pop already served is given back whole."""
        self._stopping.set()
        self.room_freed.set()

    def stop(self) -> None:
        """Stop taking turns: interrupt a pop in progress and wait for the thread (blocking: call it from a
        thread of the loop's executor)."""
        self.stop_taking()
        client_id = self._client_id
        if client_id is not None:
            try:
                with Redis.from_url(self._redis_url, socket_timeout=2, socket_connect_timeout=2) as client:
                    client.client_unblock(client_id)
            except (RedisError, OSError) as exc:
                logger.debug("could not interrupt the intake's pop: %s", type(exc).__name__)
        self._thread.join(timeout=INTAKE_BLOCK_S + 5)

    def _connect(self) -> Redis:
        return Redis.from_url(self._redis_url, socket_timeout=INTAKE_BLOCK_S + 5, socket_connect_timeout=5)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            client = self._connect()
            try:
                self._client_id = int(cast(int, client.client_id()))
                scripts = _Scripts(client)
                self._give_back(scripts, [])  # what a lost connection kept from being given back
                backoff = 0.1
                self.listening.set()
                while not self._stopping.is_set():
                    self._take(client, scripts)
            except RuntimeError:  # the event loop closed under us (a stop that outlived its wait)
                logger.warning("turn intake: the event loop is gone; stopping")
                break
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
        if self._unreturned:
            self._last_give_back()

    def _take(self, client: Redis, scripts: _Scripts) -> None:
        free = self._free_slots()
        if free <= 0:
            self.room_freed.clear()
            if self._free_slots() <= 0:  # a job may have ended between the look and the clear
                self.room_freed.wait(INTAKE_BLOCK_S)
            return
        claim_keys = claim_popped_keys(self._queue_name, self._held)
        claim_args = claim_popped_args(free, self._in_progress_ttl_s, self._claimer)
        # One round trip: Redis runs the claim right after it serves the pop (a blocked client's next command
        # waits in its buffer until then), and both answers come back together.
        pipe = client.pipeline(transaction=False)
        pipe.blmove(keys.TURN_INTAKE, self._held, INTAKE_BLOCK_S, "LEFT", "RIGHT")  # type: ignore[arg-type]
        pipe.evalsha(scripts.claim.sha, len(claim_keys), *claim_keys, *claim_args)
        moved, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, NoScriptError):  # the script cache was flushed: the popped id waits in the held list
            reply = scripts.claim(keys=claim_keys, args=claim_args)
        if not isinstance(reply, Exception):
            self._hand_over(parse_claims(reply, self._claimer), scripts)
        for answer in (moved, reply):
            if isinstance(answer, Exception):
                raise answer

    def _hand_over(self, claims: list[ClaimedJob], scripts: _Scripts) -> None:
        """Start the claimed jobs there is room for (room may have gone since the pop was sized: the poll claims
        too, and a stopping worker has none) and give the rest back, for the next worker with room."""
        if not claims:
            return
        reserved = 0 if self._stopping.is_set() else self._reserve(len(claims))
        unstarted = claims[reserved:]
        try:
            if reserved:
                self._start(claims[:reserved], reserved)
        except RuntimeError:  # the loop is gone: none of them will start
            unstarted = claims
            raise
        finally:
            self._give_back(scripts, unstarted)

    def _give_back(self, scripts: _Scripts, claims: list[ClaimedJob]) -> None:
        """Undo claims of jobs that will not start here. Kept until Redis has taken them: a claim lost on the
        way would hold its turn until arq's in-progress expiry (hours), and then it would count as a retry."""
        self._unreturned.extend(claims)
        if self._unreturned:
            scripts.give_back(keys=give_back_keys(), args=give_back_args(self._unreturned))
            self._unreturned.clear()

    def _last_give_back(self) -> None:
        try:
            with self._connect() as client:
                self._give_back(_Scripts(client), [])
        except (RedisError, OSError) as exc:
            logger.warning(
                "turn intake: %d claimed turns could not be given back (%s); they wait for arq's in-progress expiry",
                len(self._unreturned),
                type(exc).__name__,
            )


class _Scripts:
    """The intake's Lua scripts on its connection, loaded up front: the claim is sent by its hash behind the
    pop, in a pipeline that cannot load it on the way."""

    def __init__(self, client: Redis) -> None:
        self.claim = client.register_script(CLAIM_POPPED)
        self.give_back = client.register_script(GIVE_BACK)
        client.script_load(CLAIM_POPPED)
