"""HTTP limits uvicorn does not set by itself: how long a request may take to arrive, how many HTTP
connections a process holds, one request per connection.

What uvicorn's own settings bound (read in its source, 0.54): ``h11_max_incomplete_event_size`` caps a
request head, but only under the ``h11`` parser (``httptools`` keeps whatever it is sent), so the gateway
serves HTTP with ``h11``. ``timeout_keep_alive`` only runs *between* requests: a connection whose head never
completes is never closed. ``limit_concurrency`` answers 503 only once a head is complete and counts
WebSockets too, so slow heads fill it and idle sockets would refuse every page. Hence
:func:`guarded_http_protocol`, which wraps uvicorn's h11 protocol (without touching its insides): a head
must be complete within the time limit of the connection's opening, and connections still speaking HTTP
(not yet a WebSocket) are counted and refused past a bound. Responses say ``Connection: close``
(:class:`OneRequestPerConnection`), so each connection has one head to time; bodies are capped by
FastAPI's ``max_body_size`` and timed by :class:`BodyDeadline`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

# Said to a connection over the bound, before it is closed: nothing of its request has been read.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
    b"content-length: 31\r\nconnection: close\r\n\r\ntoo many connections; try again"
)
_TOO_BIG = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 30\r\nconnection: close\r\n\r\nthe request head is too large"
)
_TOO_SLOW = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 33\r\nconnection: close\r\n\r\nthe request took too long to send"
)


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int
    """HTTP connections (not yet upgraded to a WebSocket) open at once in this process."""
    request_timeout_s: float
    """From a connection's opening to the end of its request head; and for a body, from the head."""
    max_head_bytes: int
    """Request line and headers. h11 checks it too, but only on a head still incomplete after a read:
    a larger one that arrives in one read of the socket (up to 256 KB) would pass."""


class _OpenConnections:
    def __init__(self) -> None:
        self.count = 0


def guarded_http_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)``, one per server (it holds that server's count)."""
    open_connections = _OpenConnections()

    class GuardedHttpProtocol(asyncio.Protocol):
        """uvicorn's h11 protocol, given a connection only within the limits."""

        def __init__(self, **uvicorn_arguments: Any) -> None:
            self._inner = H11Protocol(**uvicorn_arguments)
            self._transport: asyncio.Transport | None = None
            self._counted = False
            self._head_complete = False
            self._head_bytes = 0
            self._tail = b""
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
            self._transport = transport
            if open_connections.count >= limits.max_connections:
                transport.write(_BUSY)
                transport.close()
                return
            open_connections.count += 1
            self._counted = True
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(limits.request_timeout_s, self._too_slow)
            self._inner.connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if not self._counted:
                return
            if not self._head_complete:
                # A head ends with an empty line; h11 accepts bare LF line ends as well as CRLF.
                seen = self._tail + data
                ends = [i for i in (seen.find(b"\n\r\n"), seen.find(b"\n\n")) if i >= 0]
                head_bytes = self._head_bytes - len(self._tail) + (min(ends) if ends else len(seen))
                if head_bytes > limits.max_head_bytes:
                    self._refuse(_TOO_BIG)
                    return
                self._head_bytes, self._tail = head_bytes, seen[-2:]
                if ends:
                    self._head_complete = True
                    self._cancel_deadline()
            self._inner.data_received(data)
            if self._transport is not None and self._transport.get_protocol() is not self:
                self._release()  # upgraded: a WebSocket now, with limits of its own

        def eof_received(self) -> None:
            if self._counted:
                self._inner.eof_received()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._counted:
                self._release()
                self._inner.connection_lost(exc)

        def pause_writing(self) -> None:
            self._inner.pause_writing()

        def resume_writing(self) -> None:
            self._inner.resume_writing()

        def _too_slow(self) -> None:
            self._refuse(_TOO_SLOW)

        def _refuse(self, response: bytes) -> None:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(response)
                self._transport.close()

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _release(self) -> None:
            self._cancel_deadline()
            if self._counted:
                self._counted = False
                open_connections.count -= 1

    return GuardedHttpProtocol


class OneRequestPerConnection:
    """Every HTTP response says ``Connection: close``: a connection then carries one request, whose head
    the protocol above times (uvicorn would otherwise wait for a next head without any time limit)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


class BodyDeadline:
    """A request body must arrive within ``timeout_s`` of its head, or the request ends with 408: a body
    sent a byte at a time would otherwise hold its connection for as long as the client likes."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_complete = False

        async def receive_in_time() -> Message:
            nonlocal body_complete
            if body_complete:
                return await receive()  # after the body only a disconnect can come; waiting for it is fine
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "the request body took too long to arrive") from None
            body_complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)
