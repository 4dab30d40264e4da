"""The relay's one shared read: what one turn or one socket does cannot stop the others' events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
from redis.asyncio import Redis

from gateway.relay import TurnRelay
from shared import keys
from shared.protocol import AcceptedEvent, DoneEvent
from shared.turn_events import TurnEventWriter
from tests.conftest import SettingsFactory
from tests.stack import chat, running_stack

OUT_OF_RANGE_AFTER = ("99999999999999999999-0", "0-99999999999999999999", "18446744073709551616-0")
LARGEST_STREAM_ID = "18446744073709551615-18446744073709551615"


async def finished_turn(writer: TurnEventWriter) -> str:
    turn_id = uuid.uuid4().hex
    accepted = AcceptedEvent(turn_id=turn_id, conversation_id="c")
    await writer.append(turn_id, [accepted], create=True)
    await writer.append(turn_id, [DoneEvent(turn_id=turn_id, answer="yes", provider="offline")])
    return turn_id


def collect_into(flags: list[bool]) -> Callable[[str, bool], None]:
    return lambda _frame, terminal: flags.append(terminal)


async def reader_blocked(redis: Redis) -> None:
    """Until a client of this Redis is blocked in XREAD (the relay's reader; nothing else blocks here)."""
    async with asyncio.timeout(10):
        while not any(c.get("cmd") == "xread" and "b" in c.get("flags", "") for c in await redis.client_list()):  # noqa: ASYNC110 - another process's state has no event
            await asyncio.sleep(0.01)


async def test_out_of_range_resume_ids_are_refused_and_others_still_get_answers(
    make_settings: SettingsFactory,
) -> None:
    async with running_stack(make_settings()) as url, chat(url) as attacker, chat(url) as honest:
        own = await attacker.ask("What is a URDF?")
        for after in OUT_OF_RANGE_AFTER:
            await attacker.send({"type": "resume", "turn_id": own.turn_id, "after": after})
            refused = await attacker.receive()
            assert refused["type"] == "error" and refused["code"] == "invalid_frame", refused
            assert refused["turn_id"] is None and after not in refused["message"]
        # The largest id Redis allows is in range but past every event: that resume alone ends in error.
        await attacker.send({"type": "resume", "turn_id": own.turn_id, "after": LARGEST_STREAM_ID})
        past = await attacker.receive()
        assert past["type"] == "error" and past["turn_id"] == own.turn_id and past["code"] == "invalid_frame"
        turn = await honest.ask("What is a ROS 2 topic?")
        assert turn.terminal["type"] == "done"


async def test_a_stream_redis_refuses_to_read_ends_only_its_own_subscription(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """A watched key that is not a stream makes Redis refuse the whole shared XREAD (WRONGTYPE): the relay
    finds that key, ends its subscribers with an error, and the other sockets' answers go on."""
    broken = uuid.uuid4().hex
    await redis.set(keys.turn_events(broken), b"not a stream")
    async with running_stack(make_settings()) as url, chat(url) as victim, chat(url) as honest:
        await victim.send({"type": "resume", "turn_id": broken})
        ended = await victim.receive()
        assert ended["type"] == "error" and ended["turn_id"] == broken and ended["code"] == "internal", ended
        turn = await honest.ask("What is a ROS 2 topic?")
        assert turn.terminal["type"] == "done"
        async with httpx.AsyncClient(base_url=url) as http:
            metrics = (await http.get("/metrics")).text
            ready = await http.get("/ready")
    assert "tutor_relay_turns_unreadable_total 1.0" in metrics
    assert "tutor_relay_ok 1.0" in metrics and ready.status_code == 200, "one bad turn is not a failing relay"


async def test_a_relay_that_keeps_failing_shows_in_ready_and_metrics(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """Redis answers PING but refuses every XREAD (an ACL): the relay cannot deliver anything, so this
    gateway is not ready; once the reads succeed again, it is."""
    async with running_stack(make_settings()) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/ready")).status_code == 200
        await redis.execute_command("ACL", "SETUSER", "default", "-xread")
        try:
            async with asyncio.timeout(30):
                while (ready := await http.get("/ready")).status_code != 503:  # noqa: ASYNC110 - a probe has no event
                    await asyncio.sleep(0.1)
            metrics = (await http.get("/metrics")).text
        finally:
            await redis.execute_command("ACL", "SETUSER", "default", "+xread")
        assert ready.json()["failing"] == ["relay"], ready.json()
        assert "tutor_relay_ok 0.0" in metrics
        read_failures = next(ln for ln in metrics.splitlines() if ln.startswith("tutor_relay_read_failures_total"))
        assert float(read_failures.split()[-1]) >= 3
        async with asyncio.timeout(30):
            while "tutor_relay_ok 1.0" not in (await http.get("/metrics")).text:  # noqa: ASYNC110 - a probe has no event
                await asyncio.sleep(0.1)


async def test_a_cancelled_subscriber_does_not_lose_the_wake_up(redis_url: str, redis: Redis) -> None:
    """A subscriber cancelled right after subscribing (a second ``resume`` of a turn cancels the first) must
    not leave the reader blocked: the next subscription is served long before the read's own timeout."""
    writer = TurnEventWriter(redis, ttl_s=60)
    relay = TurnRelay(redis_url, redis, block_ms=60_000)
    await relay.start()
    try:
        await reader_blocked(redis)
        for _ in range(20):
            abandoned = await finished_turn(writer)

            async def follow(turn_id: str) -> None:
                async with relay.subscribe(turn_id, lambda _frame, _terminal: None) as sub:
                    await sub.terminal.wait()

            first = asyncio.create_task(follow(abandoned))
            await asyncio.sleep(0)  # let it start subscribing, then cancel it mid-way
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            await reader_blocked(redis)
            terminal_flags: list[bool] = []
            async with relay.subscribe(await finished_turn(writer), collect_into(terminal_flags)) as sub:
                await asyncio.wait_for(sub.terminal.wait(), 10)
            assert terminal_flags == [False, True]
    finally:
        await relay.stop()
