"""Cohere's per-minute limits, shared by every worker through Redis: a burst of asks waits here (its clients
already saw ``accepted``) instead of turning into a storm of 429s from Cohere."""

from __future__ import annotations

from typing import Literal

from redis.asyncio import Redis

from shared.protocol import ErrorCode
from shared.rate_limit import WindowLimiter
from shared.settings import Settings
from worker.cohere.failures import ProviderFailure

Endpoint = Literal["chat", "embed", "rerank"]


class CohereLimits:
    def __init__(self, redis: Redis | None, settings: Settings) -> None:
        """Without Redis (tools, evaluation) there is no limit."""
        self._max_wait_s = settings.cohere_limit_max_wait_s
        self._limiters: dict[str, WindowLimiter] = (
            {
                "chat": WindowLimiter(redis, "cohere-chat", settings.cohere_chat_per_minute),
                "embed": WindowLimiter(redis, "cohere-embed", settings.cohere_embed_inputs_per_minute),
                "rerank": WindowLimiter(redis, "cohere-rerank", settings.cohere_rerank_per_minute),
            }
            if redis is not None
            else {}
        )

    async def wait(self, endpoint: Endpoint, cost: int = 1) -> None:
        """Until ``cost`` calls (or embedded texts) fit the limit; ``rate_limited`` after the longest wait."""
        limiter = self._limiters.get(endpoint)
        if limiter is None:
            return
        decision = await limiter.acquire("all", cost, max_wait_s=self._max_wait_s)
        if not decision.allowed:
            raise ProviderFailure(
                ErrorCode.RATE_LIMITED,
                "the tutor is at its language-model rate limit; please ask again shortly",
                round(decision.retry_after_s, 3),
            )
