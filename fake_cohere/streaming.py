"""The ``text/event-stream`` answer of ``POST /v2/chat`` with ``stream: true``: paced, and cuttable.

Each event is one SSE frame ``event: <type>\\ndata: <json>\\n\\n``. Pacing uses ``asyncio`` waits, so a slow
stream never blocks the server. A cut (knob ``break_stream_after_tokens``) raises ``StreamCut`` out of
the ASGI app after the response has started: uvicorn then closes the connection without the final
chunk, which the client sees as a dropped connection (``httpx.RemoteProtocolError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared.waiting import wait_event

from .chat import Answer, stream_events

if TYPE_CHECKING:
    from .knobs import Knobs
    from .state import FakeState

logger = logging.getLogger(__name__)
_OPENING = ("message-start", "content-start")


class StreamCut(Exception):
    """Raised on purpose to drop a chat stream mid-way (knob ``break_stream_after_tokens``)."""


def _is_cut(exc: BaseException | None) -> bool:
    if isinstance(exc, StreamCut):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_cut(inner) for inner in exc.exceptions)
    return False


class _DropCutTracebacks(logging.Filter):
    """Uvicorn logs every exception leaving the app; an intended cut is not an error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_cut(record.exc_info[1]))


def install_cut_log_filter() -> None:
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropCutTracebacks) for f in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_DropCutTracebacks())


def sse_frame(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


async def _wait_for_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    disconnected.set()


async def _pause(seconds: float, disconnected: asyncio.Event) -> None:
    if seconds > 0:
        await wait_event(disconnected, seconds)


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, answer: Answer, response_id: str, knobs: Knobs, state: FakeState) -> None:
        # Like Starlette's StreamingResponse: no body attribute, so no content-length header (chunked).
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})
        self.answer, self.response_id, self.knobs, self.state = answer, response_id, knobs, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        disconnected = asyncio.Event()
        watcher = asyncio.create_task(_wait_for_disconnect(receive, disconnected))
        try:
            finished = await self._send_events(send, disconnected)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if finished:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self.state.streams_completed += 1

    async def _send_events(self, send: Send, disconnected: asyncio.Event) -> bool:
        """Send the events; ``False`` if the client went away. Raises ``StreamCut`` to drop the stream.

        A token is never sent before its time. Events that are due together (this server fell behind
        under load) go out in one write, as a busy server's TCP stack would pack them anyway; the bytes
        on the wire are the same events either way."""
        loop = asyncio.get_running_loop()
        knobs, cut_after = self.knobs, self.knobs.break_stream_after_tokens
        interval = 1 / knobs.tokens_per_second if knobs.tokens_per_second else 0.0
        deltas = 0
        first_delta_at = 0.0
        due: list[bytes] = []

        async def flush() -> None:
            if due:
                body = b"".join(due)
                due.clear()
                await send({"type": "http.response.body", "body": body, "more_body": True})

        for event in stream_events(self.answer, self.response_id):
            kind = event["type"]
            if (
                cut_after is not None
                and kind not in _OPENING
                and (deltas >= cut_after or kind in ("content-end", "message-end"))
            ):
                await flush()
                self.state.streams_broken += 1
                logger.info("cutting chat stream %s after %d content deltas", self.response_id, deltas)
                raise StreamCut(f"stream cut after {deltas} content-delta events")
            if kind == "content-delta":
                wait = knobs.chat_first_token_ms / 1000 if deltas == 0 else 0.0
                if deltas and interval:
                    wait = first_delta_at + deltas * interval - loop.time()
                if wait > 0:
                    await flush()
                    await _pause(wait, disconnected)
                if deltas == 0:
                    first_delta_at = loop.time()
                deltas += 1
            if disconnected.is_set():
                return False
            due.append(sse_frame(event))
        await flush()
        return True
