"""Faults against the real processes: every accepted turn still ends, exactly once, with a clear event."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from redis.asyncio import Redis

from fake_cohere.testing import RunningFake
from shared import keys
from tests.conftest import SettingsFactory, redis_argv
from tests.ports import free_port
from tests.stack import ChatClient, chat, running_gateway, running_stack, running_worker, worker_process, worker_ready


async def wait_for_terminal(redis: Redis, turn_id: str, timeout_s: float = 20.0) -> list[bytes]:
    """Follow a turn's stream in Redis (a blocking read: no polling) until its terminal event."""
    key = keys.turn_events(turn_id)
    last = "0-0"
    kinds: list[bytes] = []
    async with asyncio.timeout(timeout_s):
        while True:
            for _, entries in await redis.xread({key: last}, block=1000) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    kinds.append(fields[b"t"])
            if kinds and kinds[-1] in {b"done", b"error"}:
                return kinds


# --- the worker dies -----------------------------------------------------------------------------


async def test_worker_killed_mid_answer_ends_the_turn_with_worker_lost(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    settings = cohere_settings()
    await fake_cohere.set_knobs(tokens_per_second=10)
    async with running_gateway(settings) as url, chat(url) as client:
        async with worker_process(settings) as worker:
            await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            turn = await client.collect(until="delta")
            worker.proc.send_signal(signal.SIGKILL)
            await worker.proc.wait()
        started = asyncio.get_running_loop().time()
        await client.collect(turn)
        waited = asyncio.get_running_loop().time() - started
        assert turn.terminal["type"] == "error" and turn.terminal["code"] == "worker_lost", turn.terminal
        assert waited < 10, f"the client waited {waited:.1f}s for the end of a turn whose worker died"
        assert [e["type"] for e in turn.events].count("error") == 1
        # A fresh worker (what supervisord starts) answers the next question.
        await fake_cohere.set_knobs(tokens_per_second=0)
        async with worker_process(settings):
            again = await client.ask("What is a ROS 2 topic?")
        assert again.terminal["type"] == "done"


# --- Redis restarts ------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own, which the test can kill and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = await asyncio.create_subprocess_exec(
            *redis_argv(binary, self.port, self.workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(10):
            async for line in self.proc.stdout:
                if b"Ready to accept connections" in line:
                    break
        # Keep draining its output so the pipe never fills.
        self._drain = asyncio.create_task(self.proc.stdout.read())

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        await self._drain


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    yield server
    if server.proc is not None and server.proc.returncode is None:
        await server.kill()


async def test_redis_restart_ends_turns_in_flight_and_service_recovers(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, own_redis: RedisServer
) -> None:
    import httpx

    settings = cohere_settings(redis_url=own_redis.url)
    await fake_cohere.set_knobs(tokens_per_second=10)
    async with running_stack(settings) as url, chat(url) as client, httpx.AsyncClient(base_url=url) as http:
        await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
        turn = await client.collect(until="delta")
        await own_redis.kill()
        assert (await http.get("/ready")).status_code == 503
        await own_redis.start()
        await client.collect(turn)
        assert turn.terminal["type"] == "error" and turn.terminal["code"] == "unavailable", turn.terminal
        await fake_cohere.set_knobs(tokens_per_second=0)
        again = await client.ask("What is a ROS 2 topic?")
        assert again.terminal["type"] == "done", again.terminal
        async with asyncio.timeout(10):
            while (await http.get("/ready")).status_code != 200:  # noqa: ASYNC110 - an HTTP probe has no event
                await asyncio.sleep(0.1)


# --- Cohere misbehaves ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "outcome"),
    [
        ({"fail_status": 429, "fail_count": 1, "fail_endpoints": ["chat"], "retry_after_ms": 20}, "done"),
        ({"fail_status": 503, "fail_count": 2, "fail_endpoints": ["chat"], "retry_after_ms": 20}, "done"),
        ({"fail_status": 429, "fail_count": 50, "fail_endpoints": ["chat"], "retry_after_ms": 20}, "rate_limited"),
        ({"fail_status": 500, "fail_count": 50, "fail_endpoints": ["chat"]}, "provider_error"),
        ({"fail_status": 500, "fail_count": 50, "fail_endpoints": ["embed"]}, "provider_error"),
        ({"break_stream_after_tokens": 4}, "provider_error"),
    ],
)
async def test_cohere_failures_are_retried_then_reported(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, knobs: dict[str, object], outcome: str
) -> None:
    async with running_stack(cohere_settings()) as url, chat(url) as client:
        await fake_cohere.set_knobs(**knobs)
        turn = await client.ask("What is a ROS 2 topic?")
    terminal = turn.terminal
    if outcome == "done":
        assert terminal["type"] == "done", terminal
        assert turn.text == terminal["answer"], "a retry before the first token never shows twice"
    else:
        assert terminal["type"] == "error" and terminal["code"] == outcome, terminal
        assert "Traceback" not in terminal["message"]
    if outcome == "rate_limited":
        assert terminal["retry_after"] is not None


async def test_cohere_timeout_ends_in_an_error_not_a_hang(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    async with running_stack(cohere_settings(cohere_timeout_s=0.3)) as url, chat(url) as client:
        await fake_cohere.set_knobs(chat_first_token_ms=2000)
        turn = await client.ask("What is a ROS 2 topic?")
    assert turn.terminal["type"] == "error" and turn.terminal["code"] == "provider_error"
    assert "timed out" in turn.terminal["message"]


# --- the client goes away ------------------------------------------------------------------------


async def test_closing_the_socket_stops_generation_after_the_grace(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=10)
    async with running_stack(cohere_settings(resume_grace_s=0.3)) as url:
        async with chat(url) as client:
            await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            turn = await client.collect(until="delta")
        kinds = await wait_for_terminal(redis, turn.turn_id)
    assert kinds[-1] == b"error" and b"done" not in kinds
    stats = fake_cohere.stats()
    assert stats["streams_completed"] == 0, "the model stream was closed, not read to the end"


# --- the gateway restarts ------------------------------------------------------------------------


async def test_gateway_restart_closes_with_1012_and_the_client_resumes(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    settings = cohere_settings(resume_grace_s=60)
    await fake_cohere.set_knobs(tokens_per_second=40)
    async with running_worker(settings) as worker:
        await worker_ready(worker)
        async with running_gateway(settings) as url:
            socket = await websockets.connect(url.replace("http", "ws", 1) + "/ws/chat")
            client = ChatClient(socket)
            await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            seen = await client.collect(until="delta")
        # The gateway is gone (uvicorn shut down): the socket was closed with 1012 "service restart".
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                seen.events.append(await client.receive())
        assert socket.close_code == 1012
        async with running_gateway(settings) as url, chat(url) as again:
            await again.send({"type": "resume", "turn_id": seen.turn_id, "after": seen.events[-1]["id"]})
            rest = await again.collect()
    events = seen.events + rest.events
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)), "no event twice"
    assert events[-1]["type"] == "done"
    assert "".join(e["text"] for e in events if e["type"] == "delta") == events[-1]["answer"]


# --- overload ------------------------------------------------------------------------------------


async def test_beyond_the_queue_bound_asks_get_busy_at_once(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake
) -> None:
    await fake_cohere.set_knobs(tokens_per_second=5)
    async with running_stack(cohere_settings(max_pending_turns=2)) as url, chat(url) as client:
        for _ in range(2):
            await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            await client.collect(until="accepted")
        await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
        while (event := await client.receive())["type"] != "error" or event["turn_id"] is not None:
            pass
        assert event["code"] == "busy" and event["retry_after"] > 0


# --- shutdown ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("grace_s", "tokens_per_second", "outcome"), [(4, 40, "done"), (1, 4, "unavailable")])
async def test_sigterm_lets_turns_finish_up_to_the_grace_then_ends_them(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, grace_s: int, tokens_per_second: int, outcome: str
) -> None:
    settings = cohere_settings(shutdown_grace_s=grace_s)
    await fake_cohere.set_knobs(tokens_per_second=tokens_per_second)
    async with running_gateway(settings) as url, chat(url) as client, worker_process(settings) as worker:
        await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
        turn = await client.collect(until="delta")
        worker.proc.send_signal(signal.SIGTERM)
        await client.collect(turn)
        code = await asyncio.wait_for(worker.proc.wait(), grace_s + 5)
    assert code == 0
    terminal = turn.terminal
    if outcome == "done":
        assert terminal["type"] == "done" and turn.text == terminal["answer"]
    else:
        assert terminal["type"] == "error" and terminal["code"] == outcome, terminal
