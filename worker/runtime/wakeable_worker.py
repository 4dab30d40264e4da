"""An arq ``Worker`` that starts jobs the moment they are enqueued instead of on its next poll.

arq sleeps ``poll_delay`` (0.5 s by default) between looks at the queue, which alone adds ~250 ms on
average before a turn starts. Polling faster costs Redis round trips all day long. Instead:

* **Turns** arrive through the intake list (``keys.TURN_INTAKE``): the gateway pushes each turn's job id
  there in the same call that enqueues the job, and every worker with room waits on it in a blocking pop,
  so Redis hands a new turn to exactly one waiting worker the moment it is enqueued, and at once runs the
  claim the worker sent behind the pop: the same check arq makes (not in progress anywhere). The pop and the
  claim are made by a thread (worker/runtime/turn_intake.py), so they do not wait for a busy event loop.
* **Everything else** (re-index jobs, aborts, deferred and retried jobs, and any turn whose id was popped by
  a worker that died before claiming it) goes through arq's poll of the queue's sorted set, woken by a
  pub/sub message and otherwise run every ``idle_poll_s`` as a safety net. A job is in that sorted set
  whichever way it starts, so nothing depends on the intake list alone.

Either way one Lua call claims a batch of jobs and fetches what arq's ``run_job`` would read next (the job,
its try count, its abort flag), so a claimed job starts without another round trip (worker/runtime/job_claims.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Worker
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from shared import keys
from shared.redis_connections import redis_client
from shared.waiting import wait_event
from worker.runtime.job_claims import (
    CLAIM_JOBS,
    GIVE_BACK,
    ClaimedJob,
    ClaimedJobPool,
    claim_args,
    claim_keys,
    give_back_args,
    give_back_keys,
    parse_claims,
)
from worker.runtime.starts_first_loop import StartsFirstEventLoop
from worker.runtime.turn_intake import TurnIntake

logger = logging.getLogger(__name__)

# Set by run_job (in its own task, so per job) and taken by the first look at ``pool`` that follows.
_CLAIMED: contextvars.ContextVar[ClaimedJob | None] = contextvars.ContextVar("claimed_job", default=None)


class WakeableWorker(Worker):
    def __init__(self, *args: Any, redis_url: str, idle_poll_s: float = 0.5, **kwargs: Any) -> None:
        kwargs["poll_delay"] = 0  # arq's sleep is replaced by the wait on ``_wake`` in _poll_iteration
        super().__init__(*args, **kwargs)
        self._redis_url = redis_url
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()
        self._claims_redis: Redis | None = None  # ours, not arq's pool: its connections are handed out at once
        self._claim_script: AsyncScript | None = None
        self._claimer = uuid.uuid4().hex  # the token on the poll's claims (the intake has its own)
        self._taking_turns = True  # until the worker stops
        # Slots are reserved before a claim, by the poll (on the loop) or the intake (on its thread), under one
        # lock with arq's job counter, so the two together never claim more jobs than there is room for.
        self._slots = threading.Lock()
        self._reserved = 0
        self._claimed: dict[str, ClaimedJob] = {}
        # On the worker's own loop (python -m worker), a job's start goes ahead of the callbacks already queued
        # (the answer streams'): the hand-off from the intake, the task that runs it and the job's own task.
        call_from_intake: Callable[..., object] = self.loop.call_soon_threadsafe
        if isinstance(self.loop, StartsFirstEventLoop):
            self.loop.start_first(WakeableWorker._run_claimed, *(f.coroutine for f in self.functions.values()))
            call_from_intake = self.loop.call_first_threadsafe
        # The intake thread (not in burst mode), started by the first poll: after arq's pool and on_startup.
        self._intake = (
            None
            if self.burst
            else TurnIntake(
                redis_url,
                queue_name=self.queue_name,
                in_progress_ttl_s=self.in_progress_timeout_s,
                free_slots=self._free_slots,
                reserve=self._reserve,
                start=lambda claims, reserved: call_from_intake(self._start_claimed, claims, reserved, True),
            )
        )
        self.giving_back: set[asyncio.Task[None]] = set()  # claims the intake handed over too late, given back
        self.slot_freed = asyncio.Event()  # set whenever a job ends
        self.wakeups_received = 0
        self.taken_from_intake = 0

    @property
    def pool(self) -> ArqRedis:
        claimed = _CLAIMED.get()
        if claimed is None:
            return super().pool
        _CLAIMED.set(None)  # only run_job's first pipeline is answered from the claim
        return ClaimedJobPool(claimed)  # type: ignore[return-value]

    async def main(self) -> None:
        self._claims_redis = redis_client(self._redis_url, socket_timeout=10, socket_connect_timeout=5)
        self._claim_script = self._claims_redis.register_script(CLAIM_JOBS)
        listener = asyncio.create_task(self._listen_for_wakeups(), name="wake-listener")
        try:
            await super().main()
        finally:
            # arq cancels main() again when it closes after a signal: the clean-up must not be cut short
            cleanup = asyncio.ensure_future(self._stop_helpers(listener))
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:
                await cleanup
                raise

    async def _stop_helpers(self, listener: asyncio.Task[None]) -> None:
        if self._intake is not None and self._intake.started:
            await asyncio.to_thread(self._intake.stop)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        if self._claims_redis is not None:
            await self._claims_redis.aclose()

    async def taking_turns(self) -> None:
        """Until the intake thread is connected and popping (tests: only then is a turn sure to go that way)."""
        assert self._intake is not None, "a burst worker has no intake"
        await asyncio.to_thread(self._intake.listening.wait)

    def _free_slots(self) -> int:
        """Slots neither running a job nor reserved (read by the intake thread as well)."""
        return self.max_jobs - self.job_counter - self._reserved if self.allow_pick_jobs else 0

    def _reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` slots before a claim (any thread); the number granted."""
        with self._slots:
            granted = max(min(wanted, self._free_slots()), 0)
            self._reserved += granted
            return granted

    def _unreserve(self, slots: int) -> None:
        with self._slots:
            self._reserved -= slots
        if self._intake is not None:
            self._intake.room_freed.set()

    def handle_sig(self, signum: int) -> None:
        """Stopping: cancel the running jobs (arq). A job claimed but not started yet (its task has not taken a
        step) is not cancelled unseen, which would leave it claimed for hours: its claim is given back, and its
        id goes back on the intake list for the next worker with room."""
        self._stop_intake_soon()
        unstarted = [claimed for job_id, claimed in self._claimed.items() if job_id in self.tasks]
        waiting = [self.tasks.pop(claimed.job_id) for claimed in unstarted]
        super().handle_sig(signum)  # type: ignore[arg-type]
        for task in waiting:
            task.cancel()
        if unstarted:
            self.tasks["give-back"] = self.loop.create_task(self._give_back(unstarted))

    async def _give_back(self, claims: list[ClaimedJob]) -> None:
        for claimed in claims:
            self._claimed.pop(claimed.job_id, None)
        try:
            give_back = super().pool.register_script(GIVE_BACK)
            await give_back(keys=give_back_keys(), args=give_back_args(claims))
            logger.info("gave back %d claimed turns that had not started", len(claims))
        except (RedisError, OSError) as exc:
            logger.warning("could not give back %d claimed turns (%s)", len(claims), type(exc).__name__)

    async def close(self) -> None:
        await asyncio.gather(*self.giving_back)  # before arq's close closes the pool they use
        await super().close()

    def handle_sig_wait_for_completion(self, signum: int) -> None:
        """SIGTERM: stop taking turns at once (arq stops its poll; the intake's pop must stop too, or a turn
        arriving during the grace period would start here only to be cancelled), then let running ones end."""
        self._stop_intake_soon()
        super().handle_sig_wait_for_completion(signum)  # type: ignore[arg-type]

    def _stop_intake_soon(self) -> None:
        self._taking_turns = False
        if self._intake is not None and self._intake.started:
            self._intake.stop_taking()  # at once: a pop served from now on is given back whole
            self.loop.run_in_executor(None, self._intake.stop)

    async def _poll_iteration(self) -> None:
        if self._intake is not None and not self._intake.started:
            self._intake.start()
        # Clear before looking, so a wake-up that arrives while we look is not lost.
        self._wake.clear()
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            # Redis restarting: keep the process (and its turns' state) and look again after the idle poll,
            # instead of crashing into a supervisord restart.
            logger.warning("cannot poll the queue (%s); retrying", type(exc).__name__)
        if not self.burst:
            await wait_event(self._wake, self._idle_poll_s)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """The poll's start: claim the due jobs among ``job_ids`` in one round trip (worker/runtime/job_claims.py)."""
        candidates = [job_id for job_id in (raw.decode() for raw in job_ids) if job_id not in self.tasks]
        reserved = self._reserve(len(candidates))
        if not reserved:
            return
        assert self._claim_script is not None, "claims are made from main()"
        try:
            reply = await self._claim_script(
                keys=claim_keys(self.queue_name),
                args=claim_args(candidates[:reserved], self.in_progress_timeout_s, self._claimer),
            )
        except BaseException:
            self._unreserve(reserved)
            raise
        self._start_claimed(parse_claims(reply, self._claimer), reserved)

    def _start_claimed(self, claims: list[ClaimedJob], reserved: int, from_intake: bool = False) -> None:
        """Start jobs this worker claimed, on the event loop: their reserved slots become running ones (and the
        rest of the reservation is given back). Claims the intake handed over after the worker began to stop
        are given back instead (their tasks would only be cancelled)."""
        if from_intake and not self._taking_turns:
            self._unreserve(reserved)
            if claims:  # not among arq's ``tasks``: its stop cancels those, and waits for them to end
                giving_back = self.loop.create_task(self._give_back(claims))
                self.giving_back.add(giving_back)
                giving_back.add_done_callback(self.giving_back.discard)
            return
        if reserved > len(claims):
            self._unreserve(reserved - len(claims))
            reserved = len(claims)
        with self._slots:
            self._reserved -= reserved
            self.job_counter += len(claims)
        # On a loop that starts them first, the last task created runs first: create them in reverse
        for claimed in reversed(claims) if isinstance(self.loop, StartsFirstEventLoop) else claims:
            self._claimed[claimed.job_id] = claimed
            self.tasks[claimed.job_id] = self.loop.create_task(self._run_claimed(claimed))
        if from_intake:
            self.taken_from_intake += len(claims)

    async def _run_claimed(self, claimed: ClaimedJob) -> None:
        await self.sem.acquire()  # slots were reserved: at most the poll's brief hold is waited for
        try:
            await self.run_job(claimed.job_id, claimed.score)
        finally:
            self._release_sem_dec_counter_on_complete()

    async def run_job(self, job_id: str, score: int) -> None:
        claimed = self._claimed.pop(job_id, None)
        if claimed is not None:
            _CLAIMED.set(claimed)
        await super().run_job(job_id, score)

    def _release_sem_dec_counter_on_complete(self) -> None:
        """A job's task ended (arq's callback): once its slot is counted free, tell whoever waits for one."""
        with self._slots:
            was_full = self.job_counter + self._reserved >= self.max_jobs
            super()._release_sem_dec_counter_on_complete()
        if was_full:
            self._wake.set()  # jobs may be waiting for this slot: look at the queue now, not on the next poll
        self.slot_freed.set()
        if self._intake is not None:
            self._intake.room_freed.set()

    async def _listen_for_wakeups(self) -> None:
        backoff = 0.1
        while True:
            client = Redis.from_url(self._redis_url, socket_timeout=None, socket_connect_timeout=5)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.WAKE_CHANNEL)
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.wakeups_received += 1
                            self._wake.set()
            except (RedisError, OSError) as exc:
                logger.warning("wake-up listener lost Redis (%s); polling until it is back", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                await client.aclose()
