"""Waiting for an event with a time limit, without losing a cancellation.

Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives after the awaited thing finished but
before the waiting task resumed: it returns the result instead of raising. A loop that waits on an event
with ``wait_for`` then never stops when cancelled at that moment, and whoever awaits it waits for ever (a
worker's shutdown hung this way in CI, its heartbeat loop ticking once a second). ``asyncio.timeout``
counts cancellations and re-raises ours, so every timed wait here is built on it.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Until ``event`` is set (True) or ``timeout_s`` has passed (False); a cancellation always propagates."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()  # set in the same turn of the loop as the time ran out: it counts
    return True
