"""Conversation memory: the last turns of a conversation, kept in Redis with a TTL."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from shared import keys
from worker.cohere.provider import ChatTurn


class RememberedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["remembered_turn"] = "remembered_turn"
    question: str
    answer: str


class ConversationMemory:
    def __init__(self, redis: Redis, max_turns: int, ttl_s: int) -> None:
        self._redis = redis
        self._max_turns = max_turns
        self._ttl_s = ttl_s

    async def history(self, conversation_id: str) -> list[ChatTurn]:
        if self._max_turns == 0:
            return []
        key = keys.conversation(conversation_id)
        raw: list[bytes] = await self._redis.lrange(key, -self._max_turns, -1)  # type: ignore[misc]
        turns: list[ChatTurn] = []
        for item in raw:
            remembered = RememberedTurn.model_validate_json(item)
            turns.append(ChatTurn("user", remembered.question))
            turns.append(ChatTurn("assistant", remembered.answer))
        return turns

    async def remember(self, conversation_id: str, question: str, answer: str) -> None:
        key = keys.conversation(conversation_id)
        entry = RememberedTurn(question=question, answer=answer).model_dump_json()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, entry)
            pipe.ltrim(key, -max(self._max_turns, 1), -1)
            pipe.expire(key, self._ttl_s)
            await pipe.execute()
