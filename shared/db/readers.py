"""Readers: created with a random bearer token (kept only as its hash), found again by it, or by the
subject of a verified sign-in; deleted with everything of theirs."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Conversation, Feedback, JoinedReader, Reader, Turn, utc_now
from shared.db.upsert import upsert_statement

TOKEN_BYTES = 32  # 256 random bits
MAX_TOKEN_CHARS = 128  # longer is not one of ours: refused before hashing


@dataclass(frozen=True)
class NewReader:
    reader_id: str
    reader_token: str


def token_hash(token: str) -> str:
    """SHA-256 is enough: the token is 256 random bits, nothing to guess by brute force."""
    return hashlib.sha256(token.encode()).hexdigest()


async def create_reader(sessions: async_sessionmaker[AsyncSession]) -> NewReader:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    reader = Reader(id=uuid.uuid4().hex, token_hash=token_hash(token))
    async with sessions.begin() as session:
        session.add(reader)
    return NewReader(reader.id, token)


async def reader_by_token(sessions: async_sessionmaker[AsyncSession], token: str) -> str | None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    async with sessions() as session:
        found: str | None = await session.scalar(select(Reader.id).where(Reader.token_hash == token_hash(token)))
    return found


async def reader_by_subject(
    sessions: async_sessionmaker[AsyncSession], subject: str, joining: str | None = None
) -> str:
    """The signed-in reader of ``subject``, created at their first visit. ``joining`` (the anonymous reader
    this device used until now) hands everything of theirs to the account and is then deleted."""
    async with sessions.begin() as session:
        insert = upsert_statement(session, Reader).values(id=uuid.uuid4().hex, subject=subject, created_at=utc_now())
        await session.execute(insert.on_conflict_do_nothing(index_elements=[Reader.subject]))
        reader_id: str = (await session.scalars(select(Reader.id).where(Reader.subject == subject))).one()
        if joining is not None and joining != reader_id:
            anonymous = await session.scalar(select(Reader.id).where(Reader.id == joining, Reader.subject.is_(None)))
            if anonymous is not None:
                for model in (Conversation, Turn, Feedback):
                    await session.execute(update(model).where(model.reader_id == anonymous).values(reader_id=reader_id))
                await session.execute(delete(Reader).where(Reader.id == anonymous))
                # its turns still running are recorded under its id: they follow it to the account
                joined = upsert_statement(session, JoinedReader).values(
                    id=anonymous, reader_id=reader_id, joined_at=utc_now()
                )
                await session.execute(joined.on_conflict_do_nothing(index_elements=[JoinedReader.id]))
    return reader_id


async def joined_into(sessions: async_sessionmaker[AsyncSession], reader_id: str) -> str | None:
    """The account an anonymous reader joined, if it did."""
    async with sessions() as session:
        account: str | None = await session.scalar(select(JoinedReader.reader_id).where(JoinedReader.id == reader_id))
    return account


async def delete_reader(sessions: async_sessionmaker[AsyncSession], reader_id: str) -> list[str]:
    """The reader, their conversations, turns and feedback (foreign keys cascade); returns the ids of the
    conversations that went, for the caller to forget what Redis holds of them."""
    async with sessions.begin() as session:
        conversations = list(await session.scalars(select(Conversation.id).where(Conversation.reader_id == reader_id)))
        await session.execute(delete(Reader).where(Reader.id == reader_id))
    return conversations
