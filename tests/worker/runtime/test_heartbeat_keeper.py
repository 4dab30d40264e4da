"""The heartbeat keeper against a real Redis: it renews the key's TTL from its thread while the event loop's last
beat is recent, however slow the loop, and lets the key lapse once the loop has been silent too long."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from redis import Redis

from worker.runtime.heartbeat_keeper import HeartbeatKeeper

KEY = "tutor:worker:keeper-test"
DEADLINE_S = 30.0


class LoopClock:
    """What the keeper asks: when the loop last beat. Counts the questions, so a test can wait for the keeper's
    passes instead of sleeping."""

    def __init__(self, beaten_at: float | None) -> None:
        self.beaten_at = beaten_at
        self.asked = 0
        self._changed = threading.Condition()

    def __call__(self) -> float | None:
        with self._changed:
            self.asked += 1
            self._changed.notify_all()
        return self.beaten_at

    def wait_for_passes(self, count: int) -> None:
        with self._changed:
            target = self.asked + count
            assert self._changed.wait_for(lambda: self.asked >= target, DEADLINE_S), "the keeper stopped asking"


@pytest.fixture
def client(redis_url: str) -> Iterator[Redis]:
    sync = Redis.from_url(redis_url)
    sync.delete(KEY)
    yield sync
    sync.delete(KEY)
    sync.close()


def running_keeper(redis_url: str, clock: Callable[[], float | None]) -> HeartbeatKeeper:
    keeper = HeartbeatKeeper(redis_url, KEY, ttl_s=50, interval_s=0.01, loop_silence_limit_s=60.0, loop_beaten_at=clock)
    keeper.start()
    return keeper


def test_the_key_is_renewed_while_the_loops_last_beat_is_recent(redis_url: str, client: Redis) -> None:
    client.set(KEY, "beat", ex=100)
    clock = LoopClock(time.monotonic())  # the loop beat once, then went quiet (busy), within the limit
    keeper = running_keeper(redis_url, clock)
    try:
        clock.wait_for_passes(3)
        assert keeper.renewals >= 1
        assert 0 < client.ttl(KEY) <= 50, "the keeper set the key's TTL"
    finally:
        keeper.stop()


def test_a_loop_silent_past_the_limit_is_not_covered_for(redis_url: str, client: Redis) -> None:
    client.set(KEY, "beat", ex=100)
    clock = LoopClock(time.monotonic() - 61.0)
    keeper = running_keeper(redis_url, clock)
    try:
        clock.wait_for_passes(3)
        assert keeper.renewals == 0 and client.ttl(KEY) > 50, "a stuck loop's key must lapse"
        clock.beaten_at = time.monotonic()  # the loop beats again
        clock.wait_for_passes(3)
        assert keeper.renewals >= 1 and client.ttl(KEY) <= 50
    finally:
        keeper.stop()


def test_a_key_that_is_gone_stays_gone(redis_url: str, client: Redis) -> None:
    clock = LoopClock(time.monotonic())
    keeper = running_keeper(redis_url, clock)
    try:
        clock.wait_for_passes(3)
        assert keeper.renewals == 0 and not client.exists(KEY), "only the loop writes the heartbeat itself"
    finally:
        keeper.stop()
