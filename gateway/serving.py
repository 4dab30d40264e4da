"""How uvicorn serves the gateway: the options both ``python -m gateway`` and the tests' servers use."""

from __future__ import annotations

from typing import Any

from gateway.http_limits import HttpLimits, guarded_http_protocol
from shared.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keywords for the protocol and its limits (gateway/http_limits.py says why these)."""
    limits = HttpLimits(
        max_connections=settings.max_http_connections,
        request_timeout_s=settings.http_request_timeout_s,
        max_head_bytes=settings.max_http_head_bytes,
    )
    return {
        "http": guarded_http_protocol(limits),
        "h11_max_incomplete_event_size": settings.max_http_head_bytes,
        "ws": "websockets-sansio",
        # Frames over this size close the socket with 1009; smaller ones over MAX_FRAME_BYTES get an error.
        "ws_max_size": max(1024 * 1024, settings.max_frame_bytes * 2),
        # Per-message compression costs ~100 KB of zlib state per socket; answers are small text.
        "ws_per_message_deflate": False,
        # X-Forwarded-For is ours to interpret (gateway/clients.py), only when TRUST_PROXY_HEADERS says so.
        "proxy_headers": False,
    }
