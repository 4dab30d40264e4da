"""The Redis rate limiters: GCRA for clients, a sliding minute for Cohere's per-minute limits."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.rate_limit import RateLimiter, WindowLimiter


async def test_window_admits_the_whole_minute_at_once_then_says_when(redis: Redis) -> None:
    limiter = WindowLimiter(redis, "test", per_minute=20)
    decisions = [await limiter.check("cohere") for _ in range(21)]
    assert all(d.allowed for d in decisions[:20])
    assert not decisions[20].allowed and 58 < decisions[20].retry_after_s <= 60


async def test_window_counts_units_not_calls(redis: Redis) -> None:
    limiter = WindowLimiter(redis, "test", per_minute=100)
    assert (await limiter.check("embed", cost=96)).allowed
    assert not (await limiter.check("embed", cost=5)).allowed
    assert (await limiter.check("embed", cost=4)).allowed


async def test_gcra_allows_a_burst_then_paces(redis: Redis) -> None:
    limiter = RateLimiter(redis, "test", per_minute=6)  # burst 2, then one every 10 s
    first, second, third = [await limiter.check("client") for _ in range(3)]
    assert first.allowed and second.allowed and not third.allowed
    assert 9 < third.retry_after_s <= 10


async def test_a_disabled_limit_allows_everything(redis: Redis) -> None:
    assert all([(await WindowLimiter(redis, "t", 0).check("x")).allowed for _ in range(5)])
    assert all([(await RateLimiter(redis, "t", 0).check("x")).allowed for _ in range(5)])
