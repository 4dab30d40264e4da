"""One chat WebSocket as a load generator sees it: open it, ask, time every event of the answer.

Times are taken the moment a frame is handed over by the socket: ``time.perf_counter`` for durations and
``time.time`` where a reading is compared with the server's clock (an event's ``id`` is the Redis stream
entry id, whose first part is the Redis server's clock in milliseconds when the event was written).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

# Error codes the tool itself gives a turn that ended without a server ``error`` event.
CONNECTION_LOST = "connection_lost"  # the socket closed mid-turn
CLIENT_TIMEOUT = "client_timeout"  # no terminal event within the turn time limit


@dataclass
class TurnRecord:
    """Everything measured about one turn, as the client saw it."""

    sent_at: float  # wall clock (s) when the ask was sent
    question: str
    turn_id: str | None = None
    conversation_id: str | None = None
    accepted_s: float | None = None  # ask sent → ``accepted``
    first_delta_s: float | None = None  # ask sent → first ``delta``
    total_s: float | None = None  # ask sent → ``done``/``error`` (or the failure)
    error: str | None = None  # the error code; None when the turn ended in ``done``
    retry_after_s: float | None = None  # what the server asked to wait (``rate_limited``, ``busy``)
    deltas: int = 0
    answer: str = ""
    # Per delta: (wall-clock ms at receipt - the event id's ms), i.e. written-by-the-worker → received.
    relay_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.total_s is not None

    @property
    def tokens(self) -> int:
        """Tokens ≈ whitespace-separated words of the answer's deltas (the server does not say)."""
        return len(self.answer.split())

    @property
    def tokens_per_s(self) -> float | None:
        """Streaming rate the client saw: tokens after the first delta over the time they took."""
        if not self.ok or self.first_delta_s is None or self.total_s is None:
            return None
        streaming = self.total_s - self.first_delta_s
        if streaming <= 0.0 or self.tokens < 2:
            return None
        return (self.tokens - 1) / streaming


def describe_connect_error(exc: BaseException) -> str:
    """A short, stable reason for a failed connection, used as a counter key in reports."""
    if isinstance(exc, InvalidStatus):
        return f"http_{exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "connect_timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, InvalidURI):
        return "invalid_url"
    if isinstance(exc, InvalidHandshake):
        return "handshake_failed"
    if isinstance(exc, ConnectionClosed):
        return f"closed_{exc.rcvd.code if exc.rcvd else 1006}"
    if isinstance(exc, OSError):
        return f"os_error_{exc.errno}" if exc.errno else "os_error"
    return type(exc).__name__


def event_id_ms(event_id: str) -> int:
    return int(event_id.partition("-")[0])


class ChatConnection:
    """A chat socket. ``ask`` runs one turn to its end; one turn at a time per connection."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    @classmethod
    async def open(cls, url: str, *, open_timeout_s: float = 15.0) -> ChatConnection:
        """Raises what ``websockets.connect`` raises (see ``describe_connect_error``)."""
        socket = await connect(
            url,
            open_timeout=open_timeout_s,
            # The tool pings on its own schedule where it wants to (idle mode); keepalive pings would
            # close a busy connection on a late pong and blur what is being measured.
            ping_interval=None,
            # Answers are small text frames; compression would only cost memory on both ends.
            compression=None,
            max_size=4 * 1024 * 1024,
            max_queue=None,
            close_timeout=2,
        )
        return cls(socket)

    @property
    def closed(self) -> bool:
        return self.socket.close_code is not None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.socket.close()

    async def ping(self, wait_s: float) -> float:
        """Round trip of a WebSocket ping, in seconds. Raises TimeoutError or ConnectionClosed."""
        started = time.perf_counter()
        pong = await self.socket.ping()
        await asyncio.wait_for(pong, wait_s)
        return time.perf_counter() - started

    async def ask(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        limit_s: float = 120.0,
        record_relay: bool = False,
    ) -> TurnRecord:
        """Send an ask and read its events until ``done`` or ``error``. Never raises for what the server
        or the network does: the record's ``error`` says what happened. After a ``client_timeout`` or a
        ``connection_lost`` the connection should not be reused."""
        frame: dict[str, Any] = {"type": "ask", "question": question}
        if conversation_id:
            frame["conversation_id"] = conversation_id
        record = TurnRecord(sent_at=time.time(), question=question)
        started = time.perf_counter()
        deadline = started + limit_s
        pieces: list[str] = []
        try:
            await self.socket.send(orjson.dumps(frame).decode())
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    raw = await self.socket.recv()
                received = time.perf_counter()
                received_ms = time.time() * 1000.0
                event = orjson.loads(raw)
                kind = event.get("type")
                if kind == "delta":
                    if record.first_delta_s is None:
                        record.first_delta_s = received - started
                    record.deltas += 1
                    pieces.append(event.get("text", ""))
                    if record_relay and event.get("id"):
                        record.relay_ms.append(received_ms - event_id_ms(event["id"]))
                elif kind == "accepted":
                    record.accepted_s = received - started
                    record.turn_id = event.get("turn_id")
                    record.conversation_id = event.get("conversation_id")
                elif kind == "done":
                    record.total_s = received - started
                    break
                elif kind == "error":
                    record.total_s = received - started
                    record.error = str(event.get("code") or "error")
                    if isinstance(event.get("retry_after"), int | float):
                        record.retry_after_s = float(event["retry_after"])
                    break
        except TimeoutError:
            record.error = CLIENT_TIMEOUT
            record.total_s = time.perf_counter() - started
        except (ConnectionClosed, OSError):
            record.error = CONNECTION_LOST
            record.total_s = time.perf_counter() - started
        record.answer = "".join(pieces)
        return record
