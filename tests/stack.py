"""The service's processes inside a test's event loop: a real worker and a real uvicorn gateway on a free
port, spoken to over real sockets. Only the process boundary is folded away; Redis is a real server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from fake_cohere.testing import serve_asgi
from gateway.app import create_app
from gateway.serving import uvicorn_options
from shared.settings import Settings
from worker.app import TutorWorker, build_worker


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[TutorWorker]:
    worker = build_worker(settings, handle_signals=False)
    task = asyncio.create_task(worker.arq.async_run(), name="test-worker")
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await end_jobs(worker)
        await worker.arq.close()


async def end_jobs(worker: TutorWorker) -> None:
    """Cancel the jobs still running and wait until each has ended. arq's ``close()`` cancels them itself and
    re-raises a cancellation that lands while a job is being recorded as finished, which would leave its
    Redis pool open; afterwards it finds none running."""
    running = list(worker.arq.tasks.values())
    for job in running:
        job.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    for job_id, job in list(worker.arq.tasks.items()):
        if job.done():
            del worker.arq.tasks[job_id]  # as arq's own poll drops the jobs that ended


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[str]:
    """Yields the gateway's base URL (``http://127.0.0.1:PORT``)."""
    # uvicorn's protocol, limits and proxy handling as in production (gateway/serving.py).
    async with serve_asgi(create_app(settings), lifespan="on", **uvicorn_options(settings)) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def stack_with_worker(settings: Settings) -> AsyncIterator[tuple[str, TutorWorker]]:
    """A worker that has indexed the book and a gateway: the gateway's base URL, and the worker."""
    async with running_worker(settings) as worker, running_gateway(settings) as url:
        await worker_ready(worker)
        yield url, worker


@contextlib.asynccontextmanager
async def running_stack(settings: Settings) -> AsyncIterator[str]:
    async with stack_with_worker(settings) as (url, _):
        yield url


async def worker_ready(worker: TutorWorker, timeout_s: float = 60.0) -> None:
    """Until the worker has indexed the book and said so in its heartbeat (what /ready reads)."""
    await asyncio.wait_for(worker.state.announced_ready.wait(), timeout_s)


async def history_written(worker: TutorWorker, turns: int, timeout_s: float = 60.0) -> None:
    """Until the worker has recorded this many turns in the database (it does so after each ``done``)."""
    assert worker.state.history_writer is not None
    await asyncio.wait_for(worker.state.history_writer.wait_written(turns), timeout_s)


@dataclass
class Turn:
    """Everything a client received for one turn."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def turn_id(self) -> str:
        return str(self.events[0]["turn_id"])

    @property
    def terminal(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def text(self) -> str:
        return "".join(e["text"] for e in self.of("delta"))


class ChatClient:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.socket.send(frame if isinstance(frame, str | bytes) else orjson.dumps(frame).decode())

    async def receive(self, timeout: float = 30.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.socket.recv(), timeout)
        event: dict[str, Any] = orjson.loads(raw)
        return event

    async def collect(self, turn: Turn | None = None, *, until: str | None = None) -> Turn:
        """Receive events into ``turn`` until its terminal event (or the first event of type ``until``)."""
        turn = turn or Turn()
        while True:
            event = await self.receive()
            turn.events.append(event)
            if event["type"] in {"done", "error"} or event["type"] == until:
                return turn

    async def ask(self, question: str, **fields: Any) -> Turn:
        await self.send({"type": "ask", "question": question, **fields})
        return await self.collect()


@contextlib.asynccontextmanager
async def chat(base_url: str) -> AsyncIterator[ChatClient]:
    async with websockets.connect(base_url.replace("http", "ws", 1) + "/ws/chat") as socket:
        yield ChatClient(socket)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess (``python -m worker``...) build these same settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COHERE_", "QDRANT_", "REDIS_"))}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name in {"cohere_api_key", "qdrant_api_key", "admin_token", "database_url"}:
            value = getattr(settings, name).get_secret_value()
        elif isinstance(value, list):
            value = ",".join(value)
        env[name.upper()] = str(value)
    return env


class ProcessLogs:
    """A subprocess's combined output, read as it comes; tests await lines instead of sleeping."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            async with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()

    async def wait_for(self, text: str, timeout_s: float = 60.0) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: any(text in ln for ln in self.lines)), timeout_s)
            except TimeoutError:
                raise AssertionError(f"no line with {text!r}:\n" + "\n".join(self.lines[-30:])) from None

    async def close(self) -> None:
        await self._reader


@contextlib.asynccontextmanager
async def service_process(
    module: str, settings: Settings, ready_line: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, ProcessLogs]]:
    """``python -m module`` as a real process on ``settings``, yielded once its log shows ``ready_line``;
    terminated (and its log drained) at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    logs = ProcessLogs(proc)
    try:
        await logs.wait_for(ready_line)
        yield proc, logs
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        await logs.close()


@contextlib.asynccontextmanager
async def worker_process(settings: Settings) -> AsyncIterator[ProcessLogs]:
    """``python -m worker``, started and ready (its heartbeat announced the collection)."""
    async with service_process("worker", settings, "worker ready") as (_, logs):
        yield logs


@contextlib.asynccontextmanager
async def gateway_process(settings: Settings) -> AsyncIterator[tuple[str, int]]:
    """``python -m gateway`` on ``settings.port``; yields its base URL and pid once uvicorn listens."""
    async with service_process("gateway", settings, "Uvicorn running on") as (proc, _):
        yield f"http://127.0.0.1:{settings.port}", proc.pid


def rss_bytes(pid: int) -> int:
    """A process's resident set size, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class StackThread:
    """The in-process stack on a background thread with its own event loop, for synchronous clients
    (schemathesis, a browser driver) that would otherwise block the loop the stack runs on."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="stack", daemon=True)

    async def _main(self) -> None:
        try:
            async with running_stack(self._settings) as url:
                self.url, self._loop, self._stop = url, asyncio.get_running_loop(), asyncio.Event()
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> StackThread:
        self._thread.start()
        if not self._ready.wait(120) or not self.url:
            raise RuntimeError("the stack did not start") from self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
