"""Conversation memory: the last turns of a conversation, kept in Redis with a TTL (the fast path); when
Redis has none (expired, or Redis restarted) they come from the database, within a short bound."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from shared import keys
from shared.db.database import Database, within
from shared.db.turn_history import recent_exchanges
from worker.cohere.provider import ChatTurn

logger = logging.getLogger(__name__)

# An answer may wait this long for its memory from the database, no more (then it answers without it).
DATABASE_WAIT_S = 1.0


class RememberedTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["remembered_turn"] = "remembered_turn"
    question: str
    answer: str


class ConversationMemory:
    def __init__(self, redis: Redis, max_turns: int, ttl_s: int, database: Database | None = None) -> None:
        self._redis = redis
        self._max_turns = max_turns
        self._ttl_s = ttl_s
        self._database = database

    async def history(self, conversation_id: str, *, new: bool = False) -> list[ChatTurn]:
        if self._max_turns == 0 or new:
            return []
        key = keys.conversation(conversation_id)
        raw: list[bytes] = await self._redis.lrange(key, -self._max_turns, -1)  # type: ignore[misc]
        remembered = [RememberedTurn.model_validate_json(item) for item in raw]
        if not remembered:
            remembered = await self._from_database(conversation_id)
        turns: list[ChatTurn] = []
        for turn in remembered:
            turns.append(ChatTurn("user", turn.question))
            turns.append(ChatTurn("assistant", turn.answer))
        return turns

    async def _from_database(self, conversation_id: str) -> list[RememberedTurn]:
        if self._database is None:
            return []
        try:
            sessions = await self._database.ready_sessions(DATABASE_WAIT_S)
            exchanges = await within(DATABASE_WAIT_S, recent_exchanges(sessions, conversation_id, self._max_turns))
        except Exception as exc:
            logger.warning("conversation memory from the database failed (%s); answering without", type(exc).__name__)
            return []
        remembered = [RememberedTurn(question=q, answer=a) for q, a in exchanges]
        if remembered:
            key = keys.conversation(conversation_id)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.rpush(key, *(turn.model_dump_json() for turn in remembered))
                pipe.expire(key, self._ttl_s)
                await pipe.execute()
        return remembered

    async def remember(self, conversation_id: str, question: str, answer: str) -> None:
        key = keys.conversation(conversation_id)
        entry = RememberedTurn(question=question, answer=answer).model_dump_json()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, entry)
            pipe.ltrim(key, -max(self._max_turns, 1), -1)
            pipe.expire(key, self._ttl_s)
            await pipe.execute()
