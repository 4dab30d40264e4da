"""How many ``resume`` and ``cancel`` frames one socket may send: a token bucket kept in the socket's session.

Per socket and in memory, not shared/rate_limit.py's GCRA in Redis: each such frame costs this process
work (a Redis lookup, a subscription, a replay of the turn's events), a socket lives in one process, and a
decision here costs no Redis call that a flood would multiply. An address holds at most
``MAX_SOCKETS_PER_CLIENT`` sockets, so it holds at most that many budgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``per_minute`` frames a minute sustained, bursts of up to ``burst``; ``per_minute <= 0`` allows all."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(max(1, burst))
        self._tokens = self._burst
        self._clock = clock
        self._at = clock()

    def take(self) -> float:
        """0.0 when the frame may go ahead (and it is counted), else the seconds until one may."""
        if self._rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate
