"""Whose conversation an ask continues: a reader continues only their own (or an anonymous one, which then
becomes theirs); an ask naming anybody else's starts a new conversation, so it neither reads nor extends
the other. The owner is kept in Redis beside the conversation's memory; when Redis has forgotten it, the
database says (within a short bound), and when neither can say, the ask starts afresh."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from shared import keys
from shared.db.conversations import conversation_owner
from shared.db.database import Database, within
from shared.db.readers import joined_into

logger = logging.getLogger(__name__)

ANONYMOUS = "-"
DELETED = "!deleted"  # the owner of a deleted conversation: never a reader, so nobody continues it
DATABASE_WAIT_S = 1.0


@dataclass(frozen=True)
class Claim:
    conversation_id: str
    new: bool
    """No earlier turn to remember (a conversation this ask starts)."""


class ConversationOwners:
    def __init__(self, redis: Redis, database: Database | None, ttl_s: int) -> None:
        self._redis = redis
        self._database = database
        self._ttl_s = ttl_s

    async def claim(self, conversation_id: str | None, reader_id: str | None) -> Claim:
        me = reader_id or ANONYMOUS
        if conversation_id is None:
            return await self._start(me)
        key = keys.conversation_owner(conversation_id)
        raw = await self._redis.get(key)
        owner = raw.decode() if raw is not None else None
        new = False
        if owner is None:
            known = await self._owner_in_database(conversation_id)
            if known is False:
                return await self._start(me)  # cannot tell whose it is: do not touch it
            if known is None:  # nobody has it: the client named a new conversation
                new = True
                if await self._redis.set(key, me, ex=self._ttl_s, nx=True):
                    return Claim(conversation_id, new=True)
                raw = await self._redis.get(key)
                owner = raw.decode() if raw is not None else me
            else:
                owner = known
                await self._redis.set(key, owner, ex=self._ttl_s, nx=True)
        if (
            isinstance(owner, str)
            and owner not in (me, ANONYMOUS, DELETED)
            and reader_id is not None
            and await self._joined(owner, reader_id)
        ):
            owner = me  # started on this device before its reader signed in: the account's now
        if owner == me or (owner == ANONYMOUS and reader_id is not None):
            # the reader's own, or an anonymous one this reader continues (it becomes theirs)
            await self._redis.set(key, me, ex=self._ttl_s)
            return Claim(conversation_id, new=new)
        return await self._start(me)

    async def _start(self, me: str) -> Claim:
        conversation_id = uuid.uuid4().hex
        await self._redis.set(keys.conversation_owner(conversation_id), me, ex=self._ttl_s)
        return Claim(conversation_id, new=True)

    async def _owner_in_database(self, conversation_id: str) -> str | bool | None:
        """The owner (``ANONYMOUS`` for none), None when the database has no such conversation, False
        when the database cannot answer."""
        if self._database is None:
            return None
        try:
            # an ask arriving while the schema migrates (just after a start) waits for it a little
            sessions = await self._database.ready_sessions(DATABASE_WAIT_S)
            owner = await within(DATABASE_WAIT_S, conversation_owner(sessions, conversation_id))
        except Exception as exc:
            logger.warning("conversation owner unknown, the database failed (%s)", type(exc).__name__)
            return False
        if owner.deleted:
            return DELETED
        if not owner.exists:
            return None
        return owner.reader_id or ANONYMOUS

    async def owned_by(self, conversation_id: str, reader_id: str) -> bool:
        """Whether Redis knows the conversation as this reader's (also before the database has any of it)."""
        raw = await self._redis.get(keys.conversation_owner(conversation_id))
        return raw is not None and raw.decode() == reader_id

    async def _joined(self, earlier_reader: str, reader_id: str) -> bool:
        """Whether ``earlier_reader`` (an anonymous reader) joined ``reader_id``'s account."""
        if self._database is None:
            return False
        try:
            sessions = await self._database.ready_sessions(DATABASE_WAIT_S)
            return await within(DATABASE_WAIT_S, joined_into(sessions, earlier_reader)) == reader_id
        except Exception as exc:
            logger.warning("could not tell whether a reader joined an account (%s)", type(exc).__name__)
            return False

    async def forget(self, conversation_id: str) -> None:
        """The conversation was deleted: its memory goes, and an ask naming it starts a new conversation
        (its turns would not be kept)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.conversation(conversation_id))
            pipe.set(keys.conversation_owner(conversation_id), DELETED, ex=self._ttl_s)
            await pipe.execute()
