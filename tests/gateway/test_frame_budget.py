"""The per-socket budget of resume and cancel frames."""

from __future__ import annotations

from gateway.frame_budget import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_goes_at_once_then_frames_wait_for_the_sustained_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(per_minute=60, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == 1.0, "one frame a second: the next one in a second"
    clock.now += 0.5
    assert bucket.take() == 0.5
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 3600
    assert [bucket.take() for _ in range(4)] == [0.0, 0.0, 0.0, 1.0], "an idle socket saves up only the burst"


def test_zero_per_minute_allows_everything() -> None:
    bucket = TokenBucket(per_minute=0, burst=1)
    assert all(bucket.take() == 0.0 for _ in range(1000))
