"""Cohere's streamed chat (``POST /v2/chat`` with ``stream: true``), its server-sent events decoded with orjson,
on a connection pool of its own.

Two costs measured with py-spy under ``bench/`` (one worker, 100-250 answers streaming) made this module:

* The SDK's ``chat_stream`` validates every event into pydantic models: ~250 µs of CPU per token, more
  than everything else a token costs the worker together. Here an event is one ``orjson.loads``.
* httpcore looks at every connection of a pool on each request and each response close (and closes idle
  connections whenever the pool holds more than its keep-alive limit in all). Sharing one pool with
  hundreds of open streams made every embed and rerank call scan them, and reconnect. Streams get their
  own pool, sized for ``WORKER_MAX_JOBS`` streams; embed and rerank keep the SDK's.

The request is the SDK's own: its base URL and headers (auth included) come from the SDK client, so the
key is still only handled by ``shared.cohere_client``. A refused request raises the SDK's ``ApiError``, as
``chat_stream`` does, so retries and error classification are unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin

import cohere
import httpx
import orjson
from cohere.core.api_error import ApiError

MAX_STREAMS = 512


def chat_stream_pool(timeout_s: float) -> httpx.AsyncClient:
    # Keep-alive as large as the pool: httpcore 1.0 closes idle connections while the pool holds more than
    # max_keepalive_connections connections in all (busy ones included), which would reconnect every chat.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=5.0),
        limits=httpx.Limits(max_connections=MAX_STREAMS, max_keepalive_connections=MAX_STREAMS),
    )


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


async def stream_chat_events(
    client: cohere.AsyncClientV2, pool: httpx.AsyncClient, body: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The stream's events as JSON objects (``{"type": "content-delta", ...}``), in order."""
    wrapper = client._client_wrapper
    headers = {
        **await wrapper.async_get_headers(),
        "Accept": "text/event-stream",
        "Content-Type": "application/json",
    }
    url = urljoin(wrapper.get_base_url().rstrip("/") + "/", "v2/chat")
    content = orjson.dumps({**body, "stream": True})
    async with pool.stream("POST", url, content=content, headers=headers) as response:
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
