"""The worker's event batcher against a real Redis: turns share writes, each turn's events stay in order,
and a turn that ended or lost its stream affects only itself."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from shared import keys
from shared.protocol import AcceptedEvent, CitationEvent, DoneEvent, ErrorCode, ErrorEvent, SourcesEvent
from shared.turn_events import TurnEventWriter, TurnHandedOn, TurnStreamLost
from worker.turns.event_sink import EventBatcher, TurnEnded, WriterStopped


@pytest.fixture
def writer(redis: Redis) -> TurnEventWriter:
    return TurnEventWriter(redis, ttl_s=60, max_events=1000)


async def started(writer: TurnEventWriter, turn_id: str) -> None:
    await writer.append(turn_id, [AcceptedEvent(turn_id=turn_id, conversation_id="c")], create=True)


async def stream(redis: Redis, turn_id: str) -> list[dict[str, Any]]:
    """The turn's events after ``accepted``."""
    entries = await redis.xrange(keys.turn_events(turn_id))
    return [orjson.loads(fields[b"e"]) for _, fields in entries][1:]


async def test_turns_producing_together_share_one_write(redis: Redis, writer: TurnEventWriter) -> None:
    turn_ids = [f"{i:032x}" for i in range(20)]
    for turn_id in turn_ids:
        await started(writer, turn_id)
    batcher = EventBatcher(writer)
    sinks = [batcher.sink(turn_id) for turn_id in turn_ids]
    for sink in sinks:
        sink.delta("one ")
    await asyncio.gather(*(sink.drain() for sink in sinks))
    assert batcher.writes == 1
    for sink in sinks:
        sink.delta("two ")
        sink.delta("three")
    await asyncio.gather(*(sink.drain() for sink in sinks))
    assert batcher.writes == 2, "tokens queued during a write go out together in the next one"
    for turn_id in turn_ids:
        assert [e["text"] for e in await stream(redis, turn_id)] == ["one ", "two three"]


async def test_a_turns_events_keep_their_order(redis: Redis, writer: TurnEventWriter) -> None:
    turn_id = "a" * 32
    await started(writer, turn_id)
    sink = EventBatcher(writer).sink(turn_id)
    sink.delta("Hello")
    sink.delta(", ")
    await sink.emit(CitationEvent(turn_id=turn_id, start=0, end=5, text="Hello", source_ids=["s1"]))
    sink.delta("world")
    await sink.emit(DoneEvent(turn_id=turn_id, answer=sink.answer, provider="offline"))
    events = await stream(redis, turn_id)
    assert [e["type"] for e in events] == ["delta", "citation", "delta", "done"]
    assert "".join(e["text"] for e in events if e["type"] == "delta") == "Hello, world" == events[-1]["answer"]
    with pytest.raises(TurnEnded):
        sink.delta("after the end")


async def test_an_ended_turn_stops_only_itself(redis: Redis, writer: TurnEventWriter) -> None:
    ended, going = "e" * 32, "f" * 32
    for turn_id in (ended, going):
        await started(writer, turn_id)
    await writer.append(ended, [ErrorEvent(turn_id=ended, code=ErrorCode.CANCELLED, message="cancelled")])
    batcher = EventBatcher(writer)
    stopped, running = batcher.sink(ended), batcher.sink(going)
    stopped.delta("too late")
    running.delta("fine")
    with pytest.raises(TurnEnded):
        await stopped.drain()
    await running.drain()
    assert batcher.writes == 1
    assert [e["type"] for e in await stream(redis, ended)] == ["error"]
    assert [e["text"] for e in await stream(redis, going)] == ["fine"]


async def test_a_lost_stream_is_that_turns_error(redis: Redis, writer: TurnEventWriter) -> None:
    lost, kept = "1" * 32, "2" * 32
    await started(writer, kept)  # ``lost`` never had a stream (as after a Redis restart)
    batcher = EventBatcher(writer)
    gone, fine = batcher.sink(lost), batcher.sink(kept)
    gone.delta("x")
    fine.delta("y")
    with pytest.raises(TurnStreamLost):
        await gone.drain()
    await fine.drain()
    with pytest.raises(TurnStreamLost):
        gone.delta("more")
    assert not await redis.exists(keys.turn_events(lost)), "a lost stream is not recreated with a hole"


async def test_fail_drops_unsent_deltas_and_ends_the_turn(redis: Redis, writer: TurnEventWriter) -> None:
    turn_id = "b" * 32
    await started(writer, turn_id)
    sink = EventBatcher(writer).sink(turn_id)
    sink.delta("half an ans")
    await sink.fail(ErrorEvent(turn_id=turn_id, code=ErrorCode.TIMEOUT, message="the answer took too long"))
    assert [e["type"] for e in await stream(redis, turn_id)] == ["error"]
    await sink.fail(ErrorEvent(turn_id=turn_id, code=ErrorCode.INTERNAL, message="second"))  # refused, quietly
    assert [e["code"] for e in await stream(redis, turn_id)] == ["timeout"]


async def test_redis_gone_reaches_every_turn_of_the_write(writer: TurnEventWriter, redis: Redis) -> None:
    turn_ids = ["3" * 32, "4" * 32]
    for turn_id in turn_ids:
        await started(writer, turn_id)
    unreachable = Redis(unix_socket_path="/nonexistent/redis.sock")
    batcher = EventBatcher(TurnEventWriter(unreachable, ttl_s=60))
    sinks = [batcher.sink(turn_id) for turn_id in turn_ids]
    for sink in sinks:
        sink.delta("x")
    for sink in sinks:
        with pytest.raises(RedisError):
            await sink.drain()
        with pytest.raises(RedisError):
            sink.delta("y")  # the turn learns it at its next token too, and ends (worker/turns/turn.py)
    assert batcher.writes == 1
    await unreachable.aclose()


class HeldWriter(TurnEventWriter):
    """A real writer whose first write waits to be released, then fails or goes through."""

    def __init__(self, redis: Redis, *, fail_first: bool) -> None:
        super().__init__(redis, ttl_s=60)
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self._fail_first, self._calls = fail_first, 0

    async def append_many(self, batch: Any, *, create: bool = False) -> Any:
        self._calls += 1
        if self._calls == 1:
            self.entered.set()
            await self.release.wait()
            if self._fail_first:
                raise RedisConnectionError("Redis went away")
        return await super().append_many(batch, create=create)


async def test_nothing_queued_behind_a_failed_write_goes_out(redis: Redis, writer: TurnEventWriter) -> None:
    turn_id = "5" * 32
    await started(writer, turn_id)
    held = HeldWriter(redis, fail_first=True)
    sink = EventBatcher(held).sink(turn_id)
    sink.delta("one ")
    await held.entered.wait()
    sink.delta("two ")  # queued while the write carrying "one " is in flight
    held.release.set()
    with pytest.raises(RedisError):
        await sink.drain()
    assert await stream(redis, turn_id) == [], "'two ' without 'one ' would be a hole in the answer"
    await sink.fail(ErrorEvent(turn_id=turn_id, code=ErrorCode.UNAVAILABLE, message="restarted"))
    assert [e["type"] for e in await stream(redis, turn_id)] == ["error"]


async def test_a_stopped_writer_answers_every_waiting_turn(redis: Redis, writer: TurnEventWriter) -> None:
    first, second = "6" * 32, "7" * 32
    for turn_id in (first, second):
        await started(writer, turn_id)
    held = HeldWriter(redis, fail_first=False)
    batcher = EventBatcher(held)
    in_flight, queued = batcher.sink(first), batcher.sink(second)
    in_flight.delta("a")
    await held.entered.wait()
    queued.delta("b")
    assert batcher._flusher is not None
    batcher._flusher.cancel()  # as at the worker's shutdown
    for sink in (in_flight, queued):
        with pytest.raises(WriterStopped):
            await sink.drain()


async def test_a_turn_handed_on_takes_no_more_writes_from_its_first_try(redis: Redis, writer: TurnEventWriter) -> None:
    stalled, other = "8" * 32, "9" * 32
    for turn_id in (stalled, other):
        await started(writer, turn_id)
        await redis.set(keys.turn_owner(turn_id), f"first try of {turn_id}")
    batcher = EventBatcher(writer)
    first, going = batcher.sink(stalled, f"first try of {stalled}"), batcher.sink(other, f"first try of {other}")
    await first.emit(SourcesEvent(turn_id=stalled, sources=[]))
    await redis.set(keys.turn_owner(stalled), "second try")  # the reaper handed it on, another worker took it
    first.delta("a stale ")
    going.delta("fine")
    with pytest.raises(TurnHandedOn):
        await first.drain()
    await going.drain()
    assert first.handed_on and not going.handed_on
    with pytest.raises(TurnHandedOn):
        first.delta("answer")
    with pytest.raises(TurnHandedOn):
        await first.fail(ErrorEvent(turn_id=stalled, code=ErrorCode.INTERNAL, message="not this try's to end"))
    second = batcher.sink(stalled, "second try")
    second.delta("the answer")
    await second.emit(DoneEvent(turn_id=stalled, answer=second.answer, provider="offline"))
    assert [e["type"] for e in await stream(redis, stalled)] == ["sources", "delta", "done"]
    assert [e.get("text") for e in await stream(redis, stalled)][1] == "the answer"
    assert [e["text"] for e in await stream(redis, other)] == ["fine"]
    late = batcher.sink(stalled, f"first try of {stalled}")  # the first try, resuming after the second try's end
    late.delta("still stale")
    with pytest.raises(TurnHandedOn):
        await late.drain()
    with pytest.raises(TurnEnded):
        await second.emit(ErrorEvent(turn_id=stalled, code=ErrorCode.INTERNAL, message="after its own end"))
    assert [e["type"] for e in await stream(redis, stalled)] == ["sources", "delta", "done"]


async def test_a_stream_lost_with_its_owner_token_is_a_lost_stream(redis: Redis, writer: TurnEventWriter) -> None:
    """After a Redis restart the token is gone with the stream: the turn is lost, not handed on."""
    turn_id = "d" * 32
    sink = EventBatcher(writer).sink(turn_id, "a try")
    sink.delta("x")
    with pytest.raises(TurnStreamLost):
        await sink.drain()


async def test_the_gateways_writes_need_no_owner(redis: Redis, writer: TurnEventWriter) -> None:
    turn_id = "c" * 32
    await started(writer, turn_id)
    await redis.set(keys.turn_owner(turn_id), "a worker's try")
    await writer.append(turn_id, [ErrorEvent(turn_id=turn_id, code=ErrorCode.CANCELLED, message="cancelled")])
    assert [e["code"] for e in await stream(redis, turn_id)] == ["cancelled"]
