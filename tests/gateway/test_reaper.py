"""The reaper against a real Redis: a worker that stopped proving it is alive loses its turns, a live one whose
heartbeat a Redis restart took does not."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from gateway.reaper import reap_lost_workers
from shared import keys
from shared.health import HEARTBEAT_TTL_S
from shared.protocol import AcceptedEvent, DeltaEvent
from shared.turn_events import TurnEventWriter
from shared.worker_turns import list_turn, worker_alive


async def a_streaming_turn(events: TurnEventWriter, turn_id: str) -> None:
    """A turn whose worker has sent part of the answer (a dead worker's such turn ends with worker_lost)."""
    await events.append(turn_id, [AcceptedEvent(turn_id=turn_id, conversation_id="c1")], create=True)
    await events.append(turn_id, [DeltaEvent(turn_id=turn_id, text="A topic")])


async def kinds(redis: Redis, turn_id: str) -> list[bytes]:
    return [fields[b"t"] for _, fields in await redis.xrange(keys.turn_events(turn_id))]


async def test_a_worker_listing_a_turn_before_its_first_beat_after_a_redis_restart_is_alive(redis: Redis) -> None:
    # Redis restarted (the fixture flushed it: no heartbeat); the live worker lists its next turn before it beats.
    events = TurnEventWriter(redis, ttl_s=60)
    await a_streaming_turn(events, "t1")
    await list_turn(redis, "w1", "t1")
    assert await worker_alive(redis, "w1")
    assert await reap_lost_workers(redis, events) == 0
    assert await kinds(redis, "t1") == [b"accepted", b"delta"]
    assert not await redis.exists(keys.turn_retried("t1"))


async def test_a_worker_that_neither_beats_nor_lists_a_turn_within_the_ttl_loses_its_turns(redis: Redis) -> None:
    events = TurnEventWriter(redis, ttl_s=60)
    await a_streaming_turn(events, "t1")
    await list_turn(redis, "w1", "t1")
    # the sign of life lapses with the heartbeat's TTL, so a worker killed right after listing is found as fast
    assert 0 < await redis.ttl(keys.worker_listed_turn("w1")) <= HEARTBEAT_TTL_S
    async with asyncio.timeout(HEARTBEAT_TTL_S + 5):
        while await worker_alive(redis, "w1"):  # noqa: ASYNC110 - a key's expiry has no event to await
            await asyncio.sleep(0.1)
    assert await reap_lost_workers(redis, events) == 1
    assert await kinds(redis, "t1") == [b"accepted", b"delta", b"error"]
    assert not await redis.sismember(keys.WORKERS_WITH_TURNS, "w1")  # type: ignore[misc]


async def test_a_worker_with_a_current_heartbeat_keeps_its_turns(redis: Redis) -> None:
    events = TurnEventWriter(redis, ttl_s=60)
    await a_streaming_turn(events, "t1")
    await list_turn(redis, "w1", "t1")
    await redis.delete(keys.worker_listed_turn("w1"))  # listed long ago
    await redis.set(keys.worker_heartbeat("w1"), "{}", ex=HEARTBEAT_TTL_S)
    assert await reap_lost_workers(redis, events) == 0
    assert await kinds(redis, "t1") == [b"accepted", b"delta"]
