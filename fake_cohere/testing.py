"""Run the fake Cohere server inside a test: in the test's own event loop, or in a background thread.

In an async test::

    async with running_fake_cohere(Knobs(embed_dimension=256)) as fake:
        client = cohere.AsyncClientV2(api_key="test-key", base_url=fake.base_url)
        await fake.set_knobs(fail_status=503, fail_count=1)

Where a plain, synchronous server is needed (e.g. a subprocess must reach it)::

    with FakeCohereThread() as fake:
        subprocess.run([...], env={"COHERE_BASE_URL": fake.base_url})
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .knobs import Knobs
from .state import FakeState


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening and leaves the host's signal handlers alone."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class RunningFake:
    """Handle on a running fake: its address and its live knobs and counters."""

    def __init__(self, base_url: str, app: Starlette) -> None:
        self.base_url = base_url
        self.app = app

    @property
    def state(self) -> FakeState:
        state: FakeState = self.app.state.fake
        return state

    @property
    def knobs(self) -> Knobs:
        return self.state.knobs

    async def set_knobs(self, **changes: Any) -> Knobs:
        """Partial update, validated like ``PUT /_fake/knobs``; returns the knobs now in force."""
        return self.state.update_knobs(changes)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def reset(self) -> None:
        self.state.reset()


async def _serve(server: _Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits on a failed lifespan startup; not a reason to stop the loop
        raise RuntimeError(f"the server failed to start (exit code {exc.code})") from exc


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any,
    *,
    host: str = "127.0.0.1",
    lifespan: Literal["auto", "on", "off"] = "off",
    ws: str = "none",
    timeout_graceful_shutdown: int | None = 3,
    **config: Any,
) -> AsyncIterator[str]:
    """Serve any ASGI ``app`` with uvicorn on a free port of ``host``, as a task of the current loop.

    Yields the base URL (``http://127.0.0.1:PORT``) once the server listens (and, with ``lifespan="on"``,
    once the app's startup has finished); on exit asks the server to stop and waits until it has.
    ``config`` goes to ``uvicorn.Config`` as is.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan=lifespan,
            ws=ws,
            timeout_graceful_shutdown=timeout_graceful_shutdown,
            **config,
        )
    )
    serving = asyncio.create_task(_serve(server, sock), name=f"uvicorn:{port}")
    ready = asyncio.create_task(server.ready.wait())
    try:
        await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.cancel()
    if not server.started:
        server.should_exit = True
        sock.close()
        await serving  # re-raises the startup error
        raise RuntimeError("the server stopped before it started")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def running_fake_cohere(
    knobs: Knobs | None = None, *, clock: Callable[[], float] | None = None
) -> AsyncIterator[RunningFake]:
    """Serve the fake on a free 127.0.0.1 port as a task of the current loop, for the ``async with`` body."""
    app = create_app(knobs, clock=clock)
    async with serve_asgi(app) as base_url:
        yield RunningFake(base_url, app)


class FakeCohereThread:
    """The fake in a daemon thread with its own event loop, as a synchronous context manager."""

    def __init__(self, knobs: Knobs | None = None, *, startup_timeout: float = 10.0) -> None:
        self._knobs = knobs
        self._startup_timeout = startup_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._fake: RunningFake | None = None
        self._error: BaseException | None = None

    async def _main(self) -> None:
        try:
            async with running_fake_cohere(self._knobs) as fake:
                self._loop, self._stop, self._fake = asyncio.get_running_loop(), asyncio.Event(), fake
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported by __enter__, not as an unhandled thread exception
            self._error = exc
        finally:
            self._ready.set()

    def __enter__(self) -> FakeCohereThread:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="fake-cohere", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._startup_timeout):
            raise RuntimeError("the fake Cohere server did not start in time")
        if self._fake is None:
            raise RuntimeError("the fake Cohere server failed to start") from self._error
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join()

    @property
    def fake(self) -> RunningFake:
        if self._fake is None:
            raise RuntimeError("the fake Cohere server is not running")
        return self._fake

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    @property
    def knobs(self) -> Knobs:
        return self.fake.knobs

    def _call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop (the only thread touching the state); return its result."""
        assert self._loop is not None

        async def call() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    def set_knobs(self, **changes: Any) -> Knobs:
        result: Knobs = self._call(lambda: self.fake.state.update_knobs(changes))
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(self.fake.stats)
        return result

    def reset(self) -> None:
        self._call(self.fake.reset)
