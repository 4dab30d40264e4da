"""``wait_event``: a timed wait on an event that never loses a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from shared.waiting import wait_event


async def test_true_when_set_false_when_the_time_is_up() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5) is True
    assert await wait_event(event, 0) is True  # already set: no wait at all


@pytest.mark.parametrize("loop_turns", [0, 1, 2, 3, 4])
async def test_a_cancellation_that_meets_the_event_still_stops_the_loop(loop_turns: int) -> None:
    """The event is set and the task cancelled before it resumes. ``asyncio.wait_for`` returns the result
    in this case (for one or two turns of the loop) and a ``while True`` loop around it runs on for ever."""
    event = asyncio.Event()
    waiting = asyncio.Event()

    async def ticking() -> None:
        while True:
            event.clear()
            waiting.set()
            await wait_event(event, 10)

    task = asyncio.create_task(ticking())
    await waiting.wait()
    event.set()
    for _ in range(loop_turns):
        await asyncio.sleep(0)
    task.cancel()
    # asyncio.wait does not cancel the task when its guard runs out (awaiting it would, a second time)
    done, _ = await asyncio.wait({task}, timeout=5)
    try:
        assert task in done and task.cancelled(), "the cancellation was swallowed and the loop went on"
    finally:
        task.cancel()
