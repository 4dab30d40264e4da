"""The gateway's reaper against a real Redis: a dead worker's turns are handed on or ended, each once, even
when several gateways reap at the same moment; a live worker whose heartbeat a Redis restart took keeps them."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from gateway.reaper import hand_on, reap_lost_workers
from shared import keys
from shared.health import HEARTBEAT_TTL_S
from shared.protocol import AcceptedEvent, SourcesEvent
from shared.turn_events import TurnAppend, TurnEventWriter
from shared.worker_turns import list_turn, worker_alive

WORKER = "dead-worker"


async def running_turn(redis: Redis, writer: TurnEventWriter, turn_id: str, *, streamed: bool) -> None:
    """A turn as a worker that then died left it: accepted, sources, perhaps a delta; owned and listed."""
    await writer.append(turn_id, [AcceptedEvent(turn_id=turn_id, conversation_id="c")], create=True)
    owner = "first try"
    await redis.set(keys.turn_owner(turn_id), owner)
    await redis.set(in_progress_key_prefix + turn_id, "1")
    (outcome,) = await writer.append_many([TurnAppend(turn_id, [SourcesEvent(turn_id=turn_id, sources=[])], owner)])
    assert isinstance(outcome, list)
    if streamed:
        await redis.xadd(keys.turn_events(turn_id), {"t": "delta", "e": orjson.dumps({"type": "delta"})})
    await redis.sadd(keys.worker_turns(WORKER), turn_id)  # type: ignore[misc]
    await redis.sadd(keys.WORKERS_WITH_TURNS, WORKER)  # type: ignore[misc]


async def kinds(redis: Redis, turn_id: str) -> list[Any]:
    return [fields[b"t"].decode() for _, fields in await redis.xrange(keys.turn_events(turn_id))]


async def test_a_turn_without_a_delta_is_handed_on_and_one_that_streamed_ends(redis: Redis) -> None:
    writer = TurnEventWriter(redis, ttl_s=60)
    waiting, streamed = "a" * 32, "b" * 32
    await running_turn(redis, writer, waiting, streamed=False)
    await running_turn(redis, writer, streamed, streamed=True)
    assert await reap_lost_workers(redis, writer, "offline") == 1
    assert await redis.exists(keys.turn_retried(waiting))
    assert not await redis.exists(keys.turn_owner(waiting)), "the first try no longer owns it"
    assert not await redis.exists(in_progress_key_prefix + waiting), "arq may run the second try at once"
    assert await kinds(redis, waiting) == ["accepted", "sources"]
    assert await kinds(redis, streamed) == ["accepted", "sources", "delta", "error"]
    assert not await redis.exists(keys.worker_turns(WORKER))
    assert not await redis.sismember(keys.WORKERS_WITH_TURNS, WORKER)  # type: ignore[misc]


async def test_a_turn_is_handed_on_once(redis: Redis) -> None:
    writer = TurnEventWriter(redis, ttl_s=60)
    turn_id = "c" * 32
    await running_turn(redis, writer, turn_id, streamed=False)
    assert await hand_on(redis, turn_id)
    await redis.set(keys.turn_owner(turn_id), "second try")
    assert not await hand_on(redis, turn_id), "its second worker died too: the turn ends instead"
    assert await redis.get(keys.turn_owner(turn_id)) == b"second try"


async def test_reapers_of_several_gateways_passing_together_act_on_each_turn_once(redis: Redis) -> None:
    writer = TurnEventWriter(redis, ttl_s=60)
    turn_ids = [f"{n:032x}" for n in range(20)]
    for turn_id in turn_ids:
        await running_turn(redis, writer, turn_id, streamed=False)
    ended = await asyncio.gather(*(reap_lost_workers(redis, writer, "offline") for _ in range(3)))
    assert ended == [0, 0, 0], "a turn handed on by one reaper was ended by another"
    for turn_id in turn_ids:
        assert await redis.exists(keys.turn_retried(turn_id))
        assert await kinds(redis, turn_id) == ["accepted", "sources"]


async def listed_now(redis: Redis, turn_id: str) -> None:
    """What a live worker does as it starts a turn (worker/turns/turn.py)."""
    async with redis.pipeline(transaction=True) as pipe:
        list_turn(pipe, WORKER, turn_id)
        await pipe.execute()


async def test_a_worker_listing_a_turn_before_its_first_beat_after_a_redis_restart_keeps_it(redis: Redis) -> None:
    # Redis restarted (nothing left of the worker's, its heartbeat included) and the live worker lists its next
    # turn before it beats again.
    writer = TurnEventWriter(redis, ttl_s=60)
    waiting, streamed = "d" * 32, "e" * 32
    await running_turn(redis, writer, waiting, streamed=False)
    await running_turn(redis, writer, streamed, streamed=True)
    await listed_now(redis, streamed)
    assert await worker_alive(redis, WORKER)
    assert await reap_lost_workers(redis, writer, "offline") == 0
    assert await kinds(redis, streamed) == ["accepted", "sources", "delta"], "no worker_lost"
    assert not await redis.exists(keys.turn_retried(waiting)), "not handed on"
    assert await redis.exists(keys.turn_owner(waiting))


async def test_a_worker_that_neither_beats_nor_lists_a_turn_within_the_ttl_loses_its_turns(redis: Redis) -> None:
    writer = TurnEventWriter(redis, ttl_s=60)
    turn_id = "f" * 32
    await running_turn(redis, writer, turn_id, streamed=True)
    await listed_now(redis, turn_id)
    # the sign of life lapses like a heartbeat, so a worker killed right after listing is found as fast
    assert 0 < await redis.ttl(keys.worker_listed_turn(WORKER)) <= HEARTBEAT_TTL_S
    await redis.pexpire(keys.worker_listed_turn(WORKER), 1)  # the TTL runs out sooner than waiting for it
    async with asyncio.timeout(10):
        while await worker_alive(redis, WORKER):  # noqa: ASYNC110 - a key's expiry has no event to await
            await asyncio.sleep(0.01)
    assert await reap_lost_workers(redis, writer, "offline") == 1
    assert await kinds(redis, turn_id) == ["accepted", "sources", "delta", "error"]


async def test_a_worker_with_a_current_heartbeat_keeps_its_turns(redis: Redis) -> None:
    writer = TurnEventWriter(redis, ttl_s=60)
    turn_id = "0" * 32
    await running_turn(redis, writer, turn_id, streamed=True)
    await redis.set(keys.worker_heartbeat(WORKER), "{}", ex=HEARTBEAT_TTL_S)
    assert await reap_lost_workers(redis, writer, "offline") == 0
    assert await kinds(redis, turn_id) == ["accepted", "sources", "delta"]
