"""Replicas behind a load balancer: Debian's haproxy running ``deploy/haproxy.cfg`` in front of two gateway
processes, one worker process, one Redis and one Postgres (durable memory). Any gateway serves any socket, so a
reader who loses a socket resumes through whichever gateway the balancer picks, and nothing is lost or repeated."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from fake_cohere.knobs import Knobs
from fake_cohere.testing import running_fake_cohere
from shared.settings import Settings
from tests.conftest import SettingsFactory
from tests.ports import free_port
from tests.postgres_servers import PostgresServer
from tests.replicas import ServiceProcess, haproxy, service_processes, stream_entries
from tests.stack import ChatClient, Turn, chat

ACCEPTED = '"WebSocket /ws/chat" [accepted]'


@dataclass
class Replicas:
    url: str
    gateways: tuple[ServiceProcess, ServiceProcess]
    worker: ServiceProcess
    settings: Settings

    def sockets_accepted(self) -> list[int]:
        return [sum(ACCEPTED in line for line in (g.logs.lines if g.logs else [])) for g in self.gateways]


@contextlib.asynccontextmanager
async def replicas(cohere_settings: SettingsFactory, **overrides: Any) -> AsyncIterator[Replicas]:
    ports = (free_port(), free_port())
    base = cohere_settings(
        host="127.0.0.1",
        trust_proxy_headers=True,
        max_sockets_per_client=1000,
        resume_grace_s=30.0,
        **overrides,
    )
    gateways = (
        ServiceProcess("gateway", base.model_copy(update={"port": ports[0]})),
        ServiceProcess("gateway", base.model_copy(update={"port": ports[1]})),
    )
    worker = ServiceProcess("worker", base)
    async with service_processes(worker, *gateways), haproxy(free_port(), ports) as url:
        yield Replicas(url, gateways, worker, base)


@pytest.fixture
def shared_database(postgres_server: PostgresServer) -> Iterator[str]:
    """DATABASE_URL of a fresh database on the session's Postgres, shared by every replica."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
async def slow_fake() -> AsyncIterator[str]:
    """The fake Cohere at a reading pace, so that answers are still streaming while sockets change hands."""
    async with running_fake_cohere(Knobs(embed_dimension=256, tokens_per_second=15, answer_sentences=4)) as fake:
        yield fake.base_url


async def test_a_turn_asked_through_one_gateway_is_resumed_and_cancelled_through_the_other(
    make_settings: SettingsFactory, slow_fake: str, redis: Redis, shared_database: str
) -> None:
    def settings(**overrides: Any) -> Settings:
        return make_settings(
            database_url=shared_database,
            cohere_api_key="replicas-cohere-key-0123456789",
            cohere_base_url=slow_fake,
            cohere_embed_dimension=256,
            **overrides,
        )

    async with replicas(settings) as stack:
        async with chat(stack.url) as first:
            await first.send({"type": "ask", "question": "How does a humanoid keep its balance?"})
            asked = await first.collect(until="delta")
            asked = await first.collect(asked, until="delta")  # a second delta: the answer is under way
        served_ask = stack.sockets_accepted()
        assert sorted(served_ask) == [0, 1], served_ask

        async with chat(stack.url) as second:
            await second.send({"type": "resume", "turn_id": asked.turn_id, "after": asked.events[-1]["id"]})
            resumed = await second.collect(until="delta")
            resumed = await second.collect(resumed, until="delta")
            served_resume = stack.sockets_accepted()
            assert served_resume == [1, 1], f"the resume went through the other gateway: {served_resume}"
            await second.send({"type": "cancel", "turn_id": asked.turn_id})
            await second.collect(resumed)

        assert resumed.terminal["type"] == "error" and resumed.terminal["code"] == "cancelled", resumed.events
        received = asked.events + resumed.events
        ids = [event["id"] for event in received]
        assert len(ids) == len(set(ids)), "an event came twice"
        assert received == await stream_entries(redis, asked.turn_id), "every event, once, in order"


@dataclass
class Reader:
    """One reader through the balancer: asks one question, and keeps a socket open (as the chat page does) until
    released; whenever the socket is closed under it, it reconnects and, while its turn runs, resumes it."""

    url: str
    question: str
    release: asyncio.Event
    turn: Turn = field(default_factory=Turn)
    sockets: int = 0
    without_socket_s: list[float] = field(default_factory=list)
    timeouts: int = 0  # reconnects after a handshake (10 s) or a silence (a minute) timed out
    streaming: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ended(self) -> bool:
        return bool(self.turn.events) and self.turn.terminal["type"] in {"done", "error"}

    async def read(self) -> Turn:
        dropped_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with chat(self.url) as client:
                    self.sockets += 1
                    if dropped_at is not None:
                        self.without_socket_s.append(loop.time() - dropped_at)
                        dropped_at = None
                    self.connected.set()
                    if not self.ended:
                        await self._follow(client)
                    released = asyncio.ensure_future(self.release.wait())
                    closed = asyncio.ensure_future(client.socket.wait_closed())
                    await asyncio.wait([released, closed], timeout=120, return_when=asyncio.FIRST_COMPLETED)
                    released.cancel()
                    closed.cancel()
                    if self.release.is_set():
                        return self.turn
            except (websockets.ConnectionClosed, websockets.InvalidHandshake, OSError):
                pass  # closed under it or refused: reconnect and resume, as the chat page does
            except TimeoutError:
                self.timeouts += 1  # a handshake or a silence too long (a loaded machine): the same
            self.connected.clear()
            if dropped_at is None:
                dropped_at = loop.time()
            await asyncio.sleep(0.05)  # a client's reconnect delay (the chat page backs off with jitter)

    async def _follow(self, client: ChatClient) -> None:
        """Ask (first socket) or resume after the last event received, until the turn's end."""
        if not self.turn.events:
            await client.send({"type": "ask", "question": self.question})
        else:
            await client.send({"type": "resume", "turn_id": self.turn.turn_id, "after": self.turn.events[-1]["id"]})
        while not self.ended:
            event = await client.receive(timeout=60)
            self.turn.events.append(event)
            if event["type"] == "delta":
                self.streaming.set()
        self.finished.set()


async def restart(stack: Replicas, which: int, readers: list[Reader]) -> None:
    """SIGTERM (as an orchestrator's rolling update does), wait for the exit, start it again, and wait until it
    is back in the balancer (a new socket lands on it: it has the fewest) and every reader has a socket."""
    gateway = stack.gateways[which]
    gateway.send(signal.SIGTERM)
    await gateway.wait()
    await gateway.start()
    async with asyncio.timeout(60):
        while True:
            before = stack.sockets_accepted()[which]
            with contextlib.suppress(websockets.InvalidHandshake, OSError):
                async with chat(stack.url):
                    pass
            if stack.sockets_accepted()[which] > before:
                break
            await asyncio.sleep(0.1)  # the balancer's health check has not seen it yet (every 250 ms while down)
        await asyncio.gather(*(r.connected.wait() for r in readers))


@pytest.mark.timeout(480)
async def test_a_rolling_restart_of_the_gateways_loses_no_turn_and_no_delta(
    make_settings: SettingsFactory, redis: Redis, shared_database: str
) -> None:
    chats = 100
    # ~150 tokens an answer at 2 a second: answers stream for over a minute, through both restarts
    knobs = Knobs(embed_dimension=256, tokens_per_second=2, answer_sentences=6)
    async with running_fake_cohere(knobs) as fake:

        def settings(**overrides: Any) -> Settings:
            return make_settings(
                database_url=shared_database,
                cohere_api_key="replicas-cohere-key-0123456789",
                cohere_base_url=fake.base_url,
                cohere_embed_dimension=256,
                turn_timeout_s=240.0,
                **overrides,
            )

        async with replicas(settings) as stack:
            release = asyncio.Event()
            readers = [
                Reader(stack.url, f"Question {n}: how does a humanoid keep its balance?", release) for n in range(chats)
            ]
            reading = [asyncio.create_task(r.read()) for r in readers]
            streaming_at_sigterm: list[int] = []
            try:
                await asyncio.wait_for(asyncio.gather(*(r.streaming.wait() for r in readers)), 90)
                for which in (0, 1):
                    streaming_at_sigterm.append(sum(not r.ended for r in readers))
                    await restart(stack, which, readers)
                try:
                    await asyncio.wait_for(asyncio.gather(*(r.finished.wait() for r in readers)), 240)
                except TimeoutError:
                    unfinished = [(r.sockets, r.turn.events[-2:]) for r in readers if not r.finished.is_set()]
                    raise AssertionError(f"{len(unfinished)} turns unfinished: {unfinished[:5]}") from None
                release.set()
                turns = await asyncio.wait_for(asyncio.gather(*reading), 30)
            finally:
                for task in reading:
                    task.cancel()
                await asyncio.gather(*reading, return_exceptions=True)

    for turn in turns:
        assert [e["type"] for e in turn.events].count("done") == 1 and turn.terminal["type"] == "done", turn.events[-3:]
        assert turn.text == turn.terminal["answer"], "a delta was lost or repeated"
        assert turn.events == await stream_entries(redis, turn.turn_id), "every event exactly once, in order"
    # every reader was on the second gateway when it restarted (the first one's readers had moved there)
    assert all(r.sockets >= 2 for r in readers), [r.sockets for r in readers]
    gaps = sorted(gap for r in readers for gap in r.without_socket_s)
    print(
        f"\nrolling restart, {chats} chats, {streaming_at_sigterm} still streaming at each SIGTERM: "
        f"{len(gaps)} reconnects ({sum(r.timeouts for r in readers)} after a timeout); "
        f"without a socket p50 {gaps[len(gaps) // 2] * 1000:.0f} ms, "
        f"p90 {gaps[len(gaps) * 9 // 10] * 1000:.0f} ms, max {gaps[-1] * 1000:.0f} ms"
    )
