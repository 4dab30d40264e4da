"""Cohere's streamed chat through the SDK's raw-response API, its server-sent events decoded with orjson.

Two costs measured with py-spy under ``bench/`` (one worker, 100-250 answers streaming) made this module:

* The SDK's ``chat_stream`` validates every event into pydantic models: ~250 µs of CPU per token, more
  than everything else a token costs the worker together. ``with_raw_response.chat_stream`` is the same
  request — built, authenticated, sent and, when refused, mapped to the SDK's typed errors by the SDK — and
  hands back the ``httpx`` response; here each event is then one ``orjson.loads``.
* httpcore looks at every connection of a pool on each request and each response close. Streams go
  through a second SDK client with a pool of its own, and both pools are aiohttp's (``shared.cohere_client``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cohere
import orjson


def _decode(data: str) -> dict[str, Any] | None:
    if not data or data == "[DONE]":
        return None
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # as the SDK does: an undecodable event is skipped, not fatal
    return event if isinstance(event, dict) else None


async def stream_chat_events(client: cohere.AsyncClientV2, **request: Any) -> AsyncIterator[dict[str, Any]]:
    """The stream's events as JSON objects (``{"type": "content-delta", ...}``), in order. A refused request
    raises what the SDK raises (``ApiError`` subclasses such as ``TooManyRequestsError``)."""
    async with client.with_raw_response.chat_stream(**request) as raw:
        data: list[str] = []
        async for line in raw.response.aiter_lines():
            if line.startswith("data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(" ") else value)
            elif not line and data:  # a blank line ends an event
                event = _decode("\n".join(data))
                data.clear()
                if event is not None:
                    yield event
        if data:
            event = _decode("\n".join(data))
            if event is not None:
                yield event
