"""Cohere's streamed chat (``POST /v2/chat`` with ``stream: true``), its server-sent events decoded with orjson.

The SDK's ``chat_stream`` validates every event into pydantic models, which costs ~250 µs of CPU per token
(measured with py-spy under ``bench/hop_relay.py``): more than everything else a token costs the worker
together, so one worker could stream only a few thousand tokens a second and, past ~100 concurrent
answers, queued turns waited seconds for it. The request still goes through the SDK's own HTTP layer
(base URL, auth headers, timeouts, our pooled httpx client); only the decoding of the events is ours. A
refused request raises the SDK's ``ApiError``, as ``chat_stream`` does, so retries and error
classification are unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import cohere
import httpx
import orjson
from cohere.core.api_error import ApiError


def _error_body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text


def _decode(data: str) -> dict[str, Any] | None:
    if not data or data == "[DONE]":
        return None
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # as the SDK does: an undecodable event is skipped, not fatal
    return event if isinstance(event, dict) else None


async def stream_chat_events(client: cohere.AsyncClientV2, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The stream's events as JSON objects (``{"type": "content-delta", ...}``), in order."""
    http = client._client_wrapper.httpx_client
    async with http.stream(
        "v2/chat", method="POST", json={**body, "stream": True}, headers={"Accept": "text/event-stream"}
    ) as response:
        if not 200 <= response.status_code < 300:
            await response.aread()
            raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=_error_body(response))
        data: list[str] = []
        async for line in response.aiter_lines():
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
