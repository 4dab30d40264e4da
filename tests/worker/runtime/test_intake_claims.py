"""The intake thread's pop-and-claim on its own, against a real Redis and the gateway's real ``TurnStarter``:
what it claims, what it gives back when there is no room, and a claim script Redis has forgotten."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from arq.constants import abort_jobs_ss, in_progress_key_prefix, retry_key_prefix
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from shared import keys
from shared.settings import Settings
from tests.conftest import SettingsFactory
from tests.worker.runtime.turn_queue import assert_given_back, cancel_turn, start_turns
from worker.runtime.job_claims import (
    CLAIM_JOBS,
    GIVE_BACK,
    ClaimedJob,
    claim_args,
    claim_keys,
    give_back_args,
    give_back_keys,
    parse_claims,
)
from worker.runtime.turn_intake import TurnIntake


class Starts:
    """The intake's ``start``: records each hand-off, made from the intake's thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[ClaimedJob], int]] = []
        self.made = threading.Event()

    def __call__(self, claims: list[ClaimedJob], reserved: int) -> None:
        self.calls.append((claims, reserved))
        self.made.set()

    async def first(self) -> tuple[list[ClaimedJob], int]:
        assert await asyncio.to_thread(self.made.wait, 10), "the intake started nothing"
        return self.calls[0]


def make_intake(
    settings: Settings, starts: Starts, free_slots: Callable[[], int], reserve: Callable[[int], int]
) -> TurnIntake:
    return TurnIntake(
        settings.effective_redis_url,
        queue_name=keys.QUEUE_NAME,
        in_progress_ttl_s=60,
        free_slots=free_slots,
        reserve=reserve,
        start=starts,
    )


@asynccontextmanager
async def intake_running(
    settings: Settings, starts: Starts, free_slots: Callable[[], int], reserve: Callable[[int], int]
) -> AsyncIterator[TurnIntake]:
    intake = make_intake(settings, starts, free_slots, reserve)
    intake.start()
    try:
        yield intake
    finally:
        await asyncio.to_thread(intake.stop)


def once_then(first: int, after: int) -> Callable[[], int]:
    answers = iter([first])
    return lambda: next(answers, after)


async def test_turns_waiting_are_claimed_in_one_go_and_the_held_list_is_left_empty(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    settings, starts = make_settings(), Starts()
    turns = await start_turns(settings, 3)
    async with intake_running(settings, starts, free_slots=once_then(5, 0), reserve=lambda wanted: wanted):
        claims, reserved = await starts.first()
    assert [claimed.job_id for claimed in claims] == turns, "the popped id, then the others waiting, in order"
    assert reserved == 3
    assert [claimed.job_try for claimed in claims] == [1, 1, 1]
    assert all(claimed.job is not None and not claimed.aborted for claimed in claims)
    assert all([await redis.exists(in_progress_key_prefix + turn) for turn in turns])
    assert await redis.llen(keys.TURN_INTAKE) == 0
    assert await redis.keys(keys.intake_held("*")) == [], "the claim emptied the held list"


async def test_no_more_than_the_free_slots_are_taken(make_settings: SettingsFactory, redis: Redis) -> None:
    settings, starts = make_settings(), Starts()
    turns = await start_turns(settings, 3)
    async with intake_running(settings, starts, free_slots=once_then(2, 0), reserve=lambda wanted: wanted):
        claims, _ = await starts.first()
    assert [claimed.job_id for claimed in claims] == turns[:2]
    assert await redis.lrange(keys.TURN_INTAKE, 0, -1) == [turns[2].encode()], "left for a worker with room"
    assert not await redis.exists(in_progress_key_prefix + turns[2])


async def test_claims_there_is_no_room_for_are_given_back_whole(make_settings: SettingsFactory, redis: Redis) -> None:
    """Room went between the pop and the reservation (the poll took it): the claims beyond it are undone, the
    abort a claim consumed included, and the ids go back to the head of the intake list in order."""
    settings, starts = make_settings(), Starts()
    turns = await start_turns(settings, 3)
    await cancel_turn(settings, turns[1])
    async with intake_running(settings, starts, free_slots=once_then(3, 0), reserve=lambda wanted: 1):
        claims, reserved = await starts.first()
    assert ([claimed.job_id for claimed in claims], reserved) == ([turns[0]], 1)
    await assert_given_back(redis, turns[1:])
    assert await redis.zscore(abort_jobs_ss, turns[1]) is not None, "still cancelled for whoever claims it next"
    assert await redis.zscore(abort_jobs_ss, turns[2]) is None


async def test_a_turn_popped_after_redis_forgot_the_claim_script_is_claimed_at_once(
    make_settings: SettingsFactory, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis restarted (its script cache empty): the claim sent behind the pop fails, and the id the pop moved
    to the held list is claimed from there at once, not taken for a lost connection (whose next pop would
    leave it there until the pop times out)."""
    settings, starts = make_settings(), Starts()
    async with intake_running(settings, starts, free_slots=lambda: 1, reserve=lambda wanted: wanted) as intake:
        assert await asyncio.to_thread(intake.listening.wait, 10)
        await redis.script_flush()
        [turn] = await start_turns(settings, 1)
        claims, _ = await starts.first()
    assert [(claimed.job_id, claimed.job_try) for claimed in claims] == [(turn, 1)]
    assert await redis.keys(keys.intake_held("*")) == []
    assert [record.message for record in caplog.records if record.name == "worker.runtime.turn_intake"] == []


async def test_a_pop_served_as_the_intake_stops_is_given_back_whole(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    settings, starts = make_settings(), Starts()
    turns = await start_turns(settings, 3)
    sized = threading.Event()

    def stop_as_the_pop_is_sized() -> int:
        intake.stop_taking()
        sized.set()
        return 3

    intake = make_intake(settings, starts, stop_as_the_pop_is_sized, reserve=lambda wanted: wanted)
    intake.start()
    assert await asyncio.to_thread(sized.wait, 10)
    await asyncio.to_thread(intake.stop)
    assert starts.calls == []
    await assert_given_back(redis, turns)


async def test_a_give_back_redis_refused_is_made_again_once_it_takes_it(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """Until Redis has taken a give-back the claims are kept: lost, they would hold their turns for hours."""
    settings, starts = make_settings(), Starts()
    turns = await start_turns(settings, 3)

    def refuse_scripts_then_grant(wanted: int) -> int:
        with SyncRedis.from_url(settings.effective_redis_url) as admin:
            admin.execute_command("ACL", "SETUSER", "default", "-evalsha")
        return 1

    try:
        async with intake_running(settings, starts, free_slots=once_then(3, 0), reserve=refuse_scripts_then_grant):
            claims, _ = await starts.first()  # the give-back comes next, and Redis refuses it
            assert [claimed.job_id for claimed in claims] == turns[:1]
            assert [await redis.exists(in_progress_key_prefix + turn) for turn in turns] == [1, 1, 1]
            await redis.execute_command("ACL", "SETUSER", "default", "+evalsha")
            # until the give-back lands: a pop that puts what it takes back where it was
            assert await redis.blmove(keys.TURN_INTAKE, keys.TURN_INTAKE, 10, "LEFT", "LEFT") == turns[1].encode()
    finally:
        await redis.execute_command("ACL", "SETUSER", "default", "+evalsha")
    await assert_given_back(redis, turns[1:])


async def test_a_give_back_undoes_only_a_claim_its_claimer_still_holds(
    make_settings: SettingsFactory, redis: Redis
) -> None:
    """Made again after its answer was lost, a give-back must not undo the claim another worker made since."""
    settings = make_settings()
    [turn] = await start_turns(settings, 1)
    assert await redis.lpop(keys.TURN_INTAKE) == turn.encode()  # claimed by a poll, say
    reply = await redis.register_script(CLAIM_JOBS)(keys=claim_keys(keys.QUEUE_NAME), args=claim_args([turn], 60, "a"))
    [claimed] = parse_claims(reply, "a")
    give_back = redis.register_script(GIVE_BACK)
    await give_back(keys=give_back_keys(), args=give_back_args([dataclasses.replace(claimed, claimer="b")]))
    assert await redis.get(in_progress_key_prefix + turn) == b"a", "the other claimer's claim stands"
    assert await redis.get(retry_key_prefix + turn) == b"1"
    await give_back(keys=give_back_keys(), args=give_back_args([claimed]))
    await assert_given_back(redis, [turn])
