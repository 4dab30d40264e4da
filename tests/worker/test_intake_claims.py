"""The intake thread's pop-and-claim on its own, against a real Redis and the gateway's real ``TurnStarter``:
what it claims, what it gives back when there is no room, and a claim script Redis has forgotten."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from arq.constants import abort_jobs_ss, in_progress_key_prefix, retry_key_prefix
from redis.asyncio import Redis

from gateway.app import build_redis
from gateway.turns import TurnStarter
from shared import keys
from shared.protocol import AskFrame
from shared.settings import Settings
from tests.conftest import SettingsFactory
from worker.job_claims import ClaimedJob
from worker.turn_intake import TurnIntake


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


@asynccontextmanager
async def intake_running(
    settings: Settings, starts: Starts, free_slots: Callable[[], int], reserve: Callable[[int], int]
) -> AsyncIterator[TurnIntake]:
    intake = TurnIntake(
        settings.effective_redis_url,
        queue_name=keys.QUEUE_NAME,
        in_progress_ttl_s=60,
        free_slots=free_slots,
        reserve=reserve,
        start=starts,
    )
    intake.start()
    try:
        yield intake
    finally:
        await asyncio.to_thread(intake.stop)


async def start_turns(settings: Settings, count: int) -> list[str]:
    arq = build_redis(settings)
    try:
        starter = TurnStarter(arq, settings)
        return [(await starter.start(AskFrame(type="ask", question=f"q{n}"))).turn_id for n in range(count)]
    finally:
        await arq.aclose(close_connection_pool=True)


async def cancel_turn(settings: Settings, turn_id: str) -> None:
    arq = build_redis(settings)
    try:
        await TurnStarter(arq, settings).cancel(turn_id)
    finally:
        await arq.aclose(close_connection_pool=True)


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
    assert await redis.lrange(keys.TURN_INTAKE, 0, -1) == [turns[1].encode(), turns[2].encode()]
    for turn in turns[1:]:
        assert not await redis.exists(in_progress_key_prefix + turn), "not in progress"
        assert await redis.get(retry_key_prefix + turn) == b"0", "its try was not spent"
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
    assert [record.message for record in caplog.records if record.name == "worker.turn_intake"] == []
