"""What one fake server remembers: its knobs, counters, and the sliding rate-limit windows."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .knobs import ENDPOINTS, Endpoint, Knobs

RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Rejection:
    """An answer the fake gives instead of doing the work."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def _retry_headers(wait_seconds: float) -> dict[str, str]:
    """``retry-after`` in whole seconds (what Cohere sends) plus ``retry-after-ms``, which the SDK prefers."""
    wait_ms = max(1, math.ceil(wait_seconds * 1000))
    return {"retry-after": str(max(1, math.ceil(wait_ms / 1000))), "retry-after-ms": str(wait_ms)}


class FakeState:
    def __init__(self, knobs: Knobs | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._initial = (knobs or Knobs()).model_copy(deep=True)
        self.knobs = self._initial.model_copy(deep=True)
        self.clock = clock
        self.reset(knobs=False)

    def reset(self, *, knobs: bool = True) -> None:
        """Forget counters and rate-limit windows; with ``knobs`` also go back to the starting knobs."""
        if knobs:
            self.knobs = self._initial.model_copy(deep=True)
        self._windows: dict[Endpoint, deque[float]] = {endpoint: deque() for endpoint in ENDPOINTS}
        self.requests: Counter[str] = Counter()
        self.statuses: dict[str, Counter[int]] = {endpoint: Counter() for endpoint in ENDPOINTS}
        self.texts_embedded = 0
        self.documents_reranked = 0
        self.chat_streams = 0
        self.streams_completed = 0
        self.streams_broken = 0
        self.last_chat_request: dict[str, Any] | None = None

    def update_knobs(self, changes: dict[str, Any]) -> Knobs:
        self.knobs = self.knobs.updated(changes)
        return self.knobs

    def admit(self, endpoint: Endpoint) -> Rejection | None:
        """Apply the injected failures, then the per-minute rate limit; ``None`` lets the request through."""
        knobs = self.knobs
        if knobs.fails(endpoint):
            assert knobs.fail_status is not None
            self.knobs = knobs.updated({"fail_count": knobs.fail_count - 1})
            headers = _retry_headers(knobs.retry_after_ms / 1000) if knobs.fail_status in (429, 503) else {}
            return Rejection(knobs.fail_status, f"fake failure injected ({knobs.fail_status})", headers)
        limit = knobs.rate_limit_per_minute.get(endpoint)
        if limit is None:
            return None
        now = self.clock()
        window = self._windows[endpoint]
        while window and window[0] <= now - RATE_WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit:
            wait = window[0] + RATE_WINDOW_SECONDS - now if window else RATE_WINDOW_SECONDS
            message = f"rate limit exceeded: at most {limit} {endpoint} requests per minute"
            return Rejection(429, message, _retry_headers(wait))
        window.append(now)
        return None

    def record(self, endpoint: Endpoint, status: int) -> None:
        self.statuses[endpoint][status] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "requests": {endpoint: self.requests[endpoint] for endpoint in ENDPOINTS},
            "statuses": {
                endpoint: {str(status): n for status, n in sorted(counts.items())}
                for endpoint, counts in self.statuses.items()
            },
            "texts_embedded": self.texts_embedded,
            "documents_reranked": self.documents_reranked,
            "chat_streams": self.chat_streams,
            "streams_completed": self.streams_completed,
            "streams_broken": self.streams_broken,
            "last_chat_request": self.last_chat_request,
        }
