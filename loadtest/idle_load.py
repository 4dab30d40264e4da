"""Idle mode: open N sockets, hold them for a while, ping them, and count what survives.

This is what a crowd of readers with the tutor open but not asking costs the service: memory per socket,
and whether keepalive still works when there are many. Sockets open spread over the ramp-up, at most
``connect_concurrency`` handshakes at a time; every ``ping_interval_s`` each open socket is pinged; at the
end a last round of pings decides which sockets are still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from loadtest.client import ChatConnection, describe_connect_error
from shared.waiting import wait_event

CLOSE_GRACE_S = 10.0


@dataclass(frozen=True)
class IdlePlan:
    url: str
    sockets: int
    duration_s: float  # how long to hold, counted from the start (the ramp-up is part of it)
    ramp_up_s: float = 0.0
    ping_interval_s: float = 10.0
    ping_timeout_s: float = 10.0
    connect_timeout_s: float = 15.0
    connect_concurrency: int = 200

    @property
    def hard_deadline_s(self) -> float:
        return max(self.duration_s, self.ramp_up_s) + self.connect_timeout_s + 2 * self.ping_timeout_s + CLOSE_GRACE_S


@dataclass
class PingRound:
    at_s: float  # since the start
    sent: int
    answered: int
    rtt_ms: list[float]


@dataclass
class IdleResult:
    plan: IdlePlan
    started_at: float
    elapsed_s: float
    opened: int
    open_errors: Counter[str]
    handshake_ms: list[float]
    closed_early: Counter[str]  # by close code, for sockets that were open and then closed by the other end
    rounds: list[PingRound] = field(default_factory=list)
    alive_at_end: int = 0
    cut_short: bool = False


def _close_reason(connection: ChatConnection) -> str:
    code = connection.socket.close_code
    return f"closed_{code if code is not None else 1006}"


class IdleLoad:
    def __init__(self, plan: IdlePlan) -> None:
        self.plan = plan
        self.connections: list[ChatConnection] = []
        self.open_errors: Counter[str] = Counter()
        self.closed_early: Counter[str] = Counter()
        self.handshake_ms: list[float] = []
        self.rounds: list[PingRound] = []
        self.opening = 0
        self.started = 0.0
        self._stop = asyncio.Event()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started if self.started else 0.0

    @property
    def open_now(self) -> int:
        return sum(1 for c in self.connections if not c.closed)

    def stop(self) -> None:
        self._stop.set()

    async def _open_one(self, index: int, gate: asyncio.Semaphore) -> None:
        plan = self.plan
        if plan.sockets > 1 and plan.ramp_up_s > 0:
            await wait_event(self._stop, plan.ramp_up_s * index / plan.sockets)
        if self._stop.is_set():
            return
        async with gate:
            self.opening += 1
            started = time.perf_counter()
            try:
                connection = await ChatConnection.open(plan.url, open_timeout_s=plan.connect_timeout_s)
            except Exception as exc:
                self.open_errors[describe_connect_error(exc)] += 1
                return
            finally:
                self.opening -= 1
            self.handshake_ms.append((time.perf_counter() - started) * 1000)
            self.connections.append(connection)

    async def _ping_all(self) -> PingRound:
        alive = [c for c in self.connections if not c.closed]
        gate = asyncio.Semaphore(1000)
        rtts: list[float] = []

        async def ping(connection: ChatConnection) -> None:
            async with gate:
                with contextlib.suppress(TimeoutError, ConnectionClosed, OSError, RuntimeError):
                    rtts.append(await connection.ping(self.plan.ping_timeout_s) * 1000)

        await asyncio.gather(*(ping(c) for c in alive))
        return PingRound(at_s=self.elapsed_s, sent=len(alive), answered=len(rtts), rtt_ms=rtts)

    async def _hold(self, until: float) -> None:
        """Ping every interval until ``until`` (perf_counter), then once more: the survivors' census."""
        while True:
            remaining = until - time.perf_counter()
            if remaining <= 0 or self._stop.is_set():
                break
            await wait_event(self._stop, min(self.plan.ping_interval_s, remaining))
            if time.perf_counter() < until and not self._stop.is_set():
                self.rounds.append(await self._ping_all())

    async def run(self) -> IdleResult:
        plan = self.plan
        started_at = time.time()
        self.started = time.perf_counter()
        until = self.started + plan.duration_s
        gate = asyncio.Semaphore(plan.connect_concurrency)
        openers = [asyncio.create_task(self._open_one(i, gate)) for i in range(plan.sockets)]
        holder = asyncio.create_task(self._hold(until))
        alive_at_end = 0
        cut_short = False
        try:
            async with asyncio.timeout(plan.hard_deadline_s):
                await asyncio.gather(*openers)
                await holder
                final = await self._ping_all()
                self.rounds.append(final)
                alive_at_end = final.answered
        except TimeoutError:
            cut_short = True
        finally:
            for task in (*openers, holder):
                task.cancel()
            await asyncio.gather(*openers, holder, return_exceptions=True)
            for connection in self.connections:
                if connection.closed:
                    self.closed_early[_close_reason(connection)] += 1
            await self._close_all()
        return IdleResult(
            plan=plan,
            started_at=started_at,
            elapsed_s=self.elapsed_s,
            opened=len(self.connections),
            open_errors=Counter(self.open_errors),
            handshake_ms=list(self.handshake_ms),
            closed_early=Counter(self.closed_early),
            rounds=list(self.rounds),
            alive_at_end=alive_at_end,
            cut_short=cut_short,
        )

    async def _close_all(self) -> None:
        gate = asyncio.Semaphore(500)

        async def close(connection: ChatConnection) -> None:
            async with gate:
                await connection.close()

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_GRACE_S):
                await asyncio.gather(*(close(c) for c in self.connections if not c.closed))
        for connection in self.connections:
            if not connection.closed:
                connection.socket.transport.abort()
