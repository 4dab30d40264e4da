"""Cohere's streamed chat through the SDK's raw-response API, its server-sent events decoded with orjson.

The SDK still builds, authenticates and sends the request and maps refusals to its typed errors; only the
events are decoded here, because validating each into pydantic models cost more CPU per token than all the
rest of a token's work (bench/analysis.md, item 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cohere
import orjson


def _decode(data: bytes) -> dict[str, Any] | None:
    if not data or data == b"[DONE]":
        return None
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # as the SDK does: an undecodable event is skipped, not fatal
    return event if isinstance(event, dict) else None


class ServerSentEvents:
    """Bytes in, the ``data`` of each complete event out: lines end in LF or CRLF, a blank line ends an
    event, several ``data:`` lines join with LF, other fields (``event:``, ``id:``, comments) are ignored.
    On bytes, not text: orjson reads UTF-8 itself, so httpx's text and line decoders are skipped."""

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, self._rest = (self._rest + chunk).split(b"\n")
        return [data for line in lines if (data := self._line(line.removesuffix(b"\r"))) is not None]

    def _line(self, line: bytes) -> bytes | None:
        if line.startswith(b"data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        elif not line and self._data:
            return self._event()
        return None

    def _event(self) -> bytes:
        data = b"\n".join(self._data)
        self._data.clear()
        return data

    def end(self) -> bytes | None:
        """What is left when the stream closes: a last event without its blank line."""
        rest, self._rest = self._rest, b""
        if rest and (data := self._line(rest.removesuffix(b"\r"))) is not None:
            return data
        return self._event() if self._data else None


async def stream_chat_events(client: cohere.AsyncClientV2, **request: Any) -> AsyncIterator[dict[str, Any]]:
    """The stream's events as JSON objects (``{"type": "content-delta", ...}``), in order. A refused request
    raises what the SDK raises (``ApiError`` subclasses such as ``TooManyRequestsError``)."""
    async with client.with_raw_response.chat_stream(**request) as raw:
        events = ServerSentEvents()
        async for chunk in raw.response.aiter_bytes():
            for data in events.feed(chunk):
                if (event := _decode(data)) is not None:
                    yield event
        last = events.end()
        if last is not None and (event := _decode(last)) is not None:
            yield event
