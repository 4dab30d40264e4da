"""Turns in Redis for the intake's and the worker's tests: started and cancelled by the gateway's real
``TurnStarter``, and the state a claim given back must leave."""

from __future__ import annotations

from arq.constants import in_progress_key_prefix, retry_key_prefix
from redis.asyncio import Redis

from gateway.app import build_redis
from gateway.turns import TurnStarter
from shared import keys
from shared.protocol import AskFrame
from shared.settings import Settings


async def start_turns(settings: Settings, count: int) -> list[str]:
    arq = build_redis(settings)
    try:
        starter = TurnStarter(arq, settings)
        return [(await starter.start(AskFrame(type="ask", question=f"q{n}"))).turn_id for n in range(count)]
    finally:
        await arq.aclose(close_connection_pool=True)


async def start_turn(settings: Settings) -> str:
    [turn_id] = await start_turns(settings, 1)
    return turn_id


async def cancel_turn(settings: Settings, turn_id: str) -> None:
    arq = build_redis(settings)
    try:
        await TurnStarter(arq, settings).cancel(turn_id)
    finally:
        await arq.aclose(close_connection_pool=True)


async def assert_given_back(redis: Redis, turns: list[str]) -> None:
    """Not in progress, their tries not spent, and back at the head of the intake list in order."""
    assert await redis.lrange(keys.TURN_INTAKE, 0, -1) == [turn.encode() for turn in turns], "at the head, in order"
    for turn in turns:
        assert not await redis.exists(in_progress_key_prefix + turn), "not in progress"
        assert await redis.get(retry_key_prefix + turn) == b"0", "its try was not spent"
