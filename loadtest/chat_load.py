"""Chat mode: N simulated users, each on its own socket, asking one question after another.

Users start spread over the ramp-up; each asks, reads the whole answer, thinks, and asks again until its
turn count is reached or the duration is over (then no new turn starts; turns in flight finish or hit
their time limit). A hard deadline cancels whatever is still running, so a run always ends by itself.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadtest.client import CLIENT_TIMEOUT, CONNECTION_LOST, ChatConnection, TurnRecord, describe_connect_error
from shared.waiting import wait_event

CONNECT_ATTEMPTS = 3  # per connection a user needs; then the user gives up (counted in the report)
FAILURE_PAUSE_S = 0.5  # least a user waits after a failed turn
STOP_GRACE_S = 5.0  # after the last turn's time limit, before in-flight work is cancelled


@dataclass(frozen=True)
class ChatLoadPlan:
    url: str
    users: int
    questions: Sequence[str]
    ramp_up_s: float = 0.0
    duration_s: float | None = None
    turns_per_user: int | None = None
    think_time_s: float = 0.0
    reuse_conversation: bool = False
    turn_timeout_s: float = 120.0
    connect_timeout_s: float = 15.0
    record_relay: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.duration_s is None and self.turns_per_user is None:
            raise ValueError("a chat load needs a duration, a turn count, or both")
        if not self.questions:
            raise ValueError("a chat load needs at least one question")

    @property
    def hard_deadline_s(self) -> float:
        """Longest the run may take, from its start, whatever the server does."""
        ramp = self.ramp_up_s
        if self.duration_s is not None:
            return max(self.duration_s, ramp) + self.turn_timeout_s + STOP_GRACE_S
        assert self.turns_per_user is not None
        per_turn = self.turn_timeout_s + 1.5 * self.think_time_s
        connects = CONNECT_ATTEMPTS * (self.connect_timeout_s + 2.0) * self.turns_per_user
        return ramp + self.turns_per_user * per_turn + connects + STOP_GRACE_S


@dataclass
class ChatLoadResult:
    plan: ChatLoadPlan
    started_at: float  # wall clock
    elapsed_s: float
    turns: list[TurnRecord]
    connections_opened: int
    connect_errors: Counter[str]
    users_gave_up: int
    cut_short: bool  # the hard deadline or an interruption cancelled work in flight
    unfinished: int = 0  # turns in flight when they were cancelled (not in ``turns``)


@dataclass
class LiveCounters:
    """What the progress display reads while the run goes on."""

    connected: int = 0
    in_flight: int = 0
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    recent: list[TurnRecord] = field(default_factory=list)  # the last turns, for running percentiles

    def add(self, record: TurnRecord) -> None:
        if record.ok:
            self.ok += 1
        else:
            self.failed += 1
            self.errors[record.error or "unknown"] += 1
        self.recent.append(record)
        if len(self.recent) > 2000:
            del self.recent[:1000]


class ChatLoad:
    def __init__(self, plan: ChatLoadPlan) -> None:
        self.plan = plan
        self.live = LiveCounters()
        self.turns: list[TurnRecord] = []
        self.connections_opened = 0
        self.connect_errors: Counter[str] = Counter()
        self.users_gave_up = 0
        self.started = 0.0  # perf_counter at start
        self._stop = asyncio.Event()  # no new turns
        self._rng = random.Random(plan.seed)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started if self.started else 0.0

    def stop(self) -> None:
        """Start no new turns (turns in flight still finish); what Ctrl-C does first."""
        self._stop.set()

    async def _pause(self, seconds: float) -> bool:
        """Sleep unless stopped first; True if the run should go on."""
        if seconds > 0:
            await wait_event(self._stop, seconds)
        return not self._stop.is_set()

    async def _connect(self) -> ChatConnection | None:
        for attempt in range(CONNECT_ATTEMPTS):
            if self._stop.is_set():
                return None
            try:
                connection = await ChatConnection.open(self.plan.url, open_timeout_s=self.plan.connect_timeout_s)
            except Exception as exc:
                self.connect_errors[describe_connect_error(exc)] += 1
                if not await self._pause(2.0**attempt):
                    return None
                continue
            self.connections_opened += 1
            return connection
        self.users_gave_up += 1
        return None

    async def _user(self, index: int) -> None:
        plan = self.plan
        if plan.users > 1 and not await self._pause(plan.ramp_up_s * index / plan.users):
            return
        connection: ChatConnection | None = None
        conversation_id: str | None = None
        asked = 0
        try:
            while not self._stop.is_set() and (plan.turns_per_user is None or asked < plan.turns_per_user):
                if connection is None:
                    connection = await self._connect()
                    if connection is None:
                        return
                    self.live.connected += 1
                question = self._rng.choice(plan.questions)
                self.live.in_flight += 1
                try:
                    record = await connection.ask(
                        question,
                        conversation_id if plan.reuse_conversation else None,
                        limit_s=plan.turn_timeout_s,
                        record_relay=plan.record_relay,
                    )
                finally:
                    self.live.in_flight -= 1
                asked += 1
                self.turns.append(record)
                self.live.add(record)
                if record.conversation_id:
                    conversation_id = record.conversation_id
                if record.error in (CLIENT_TIMEOUT, CONNECTION_LOST) or connection.closed:
                    # The socket's state is unknown (a late answer may still arrive): start afresh.
                    await connection.close()
                    connection = None
                    self.live.connected -= 1
                if plan.turns_per_user is not None and asked >= plan.turns_per_user:
                    break  # nothing left to ask: no think time, no wait
                think = plan.think_time_s * self._rng.uniform(0.5, 1.5) if plan.think_time_s > 0 else 0.0
                # A polite client waits as long as the server asked before asking again, and a failed
                # turn is never retried in a tight loop.
                wait = think
                if not record.ok:
                    wait = max(wait, FAILURE_PAUSE_S, min(record.retry_after_s or 0.0, plan.turn_timeout_s))
                await self._pause(wait)
        finally:
            if connection is not None:
                self.live.connected -= 1
                await connection.close()

    async def run(self) -> ChatLoadResult:
        plan = self.plan
        started_at = time.time()
        self.started = time.perf_counter()
        users = [asyncio.create_task(self._user(i), name=f"user-{i}") for i in range(plan.users)]
        stopper = None
        if plan.duration_s is not None:
            stopper = asyncio.get_running_loop().call_later(plan.duration_s, self._stop.set)
        cut_short = False
        unfinished = 0
        try:
            _, pending = await asyncio.wait(users, timeout=plan.hard_deadline_s)
            cut_short = bool(pending)
        except asyncio.CancelledError:
            cut_short = True
            raise
        finally:
            if stopper is not None:
                stopper.cancel()
            self._stop.set()
            unfinished = self.live.in_flight
            for task in users:
                task.cancel()
            await asyncio.gather(*users, return_exceptions=True)
        return ChatLoadResult(
            plan=plan,
            started_at=started_at,
            elapsed_s=self.elapsed_s,
            turns=list(self.turns),
            connections_opened=self.connections_opened,
            connect_errors=Counter(self.connect_errors),
            users_gave_up=self.users_gave_up,
            cut_short=cut_short,
            unfinished=unfinished,
        )
