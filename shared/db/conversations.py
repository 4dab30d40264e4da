"""A reader's conversations: the list (newest first, keyset pages), one with its turns, deletion, and whose
a conversation is. Every query names the reader, so nobody reads another reader's rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Conversation, DeletedConversation, Feedback, JoinedReader, Turn, utc_now
from shared.db.upsert import upsert_statement

PAGE_SIZE = 20


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    updated_at: datetime
    turns: int


@dataclass(frozen=True)
class Page:
    conversations: list[ConversationSummary]
    next: tuple[datetime, str] | None
    """Where the next page starts (the last row's ``updated_at`` and ``id``), or None on the last page."""


@dataclass(frozen=True)
class Owner:
    exists: bool
    reader_id: str | None
    deleted: bool = False
    """Its reader deleted it: nobody may continue it (its turns would not be kept)."""


async def list_conversations(
    sessions: async_sessionmaker[AsyncSession],
    reader_id: str,
    after: tuple[datetime, str] | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    turns = select(func.count()).where(Turn.conversation_id == Conversation.id).scalar_subquery()
    query = (
        select(Conversation.id, Conversation.title, Conversation.updated_at, turns)
        .where(Conversation.reader_id == reader_id)
        .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(Conversation.updated_at < at, and_(Conversation.updated_at == at, Conversation.id < last_id))
        )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    summaries = [ConversationSummary(id=r[0], title=r[1], updated_at=r[2], turns=int(r[3])) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(summaries, (summaries[-1].updated_at, summaries[-1].id) if more and summaries else None)


async def get_conversation(
    sessions: async_sessionmaker[AsyncSession], reader_id: str, conversation_id: str
) -> dict[str, Any] | None:
    """The conversation with every turn (oldest first) and its feedback, or None if it is not the reader's."""
    async with sessions() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.id == conversation_id, Conversation.reader_id == reader_id)
        )
        if conversation is None:
            return None
        rows = (
            await session.execute(
                select(Turn, Feedback)
                .outerjoin(Feedback, Feedback.turn_id == Turn.id)
                .where(Turn.conversation_id == conversation_id)
                .order_by(Turn.created_at, Turn.id)
            )
        ).all()
    return {
        "id": conversation.id,
        "title": conversation.title,
        "updated_at": conversation.updated_at,
        "turns": [
            {
                "turn_id": turn.id,
                "question": turn.question,
                "selected_text": turn.selected_text,
                "answer": turn.answer,
                "sources": turn.sources,
                "citations": turn.citations,
                "provider": turn.provider,
                "status": turn.status,
                "created_at": turn.created_at,
                "feedback": None
                if feedback is None
                else {"rating": feedback.rating, "reason": feedback.reason, "comment": feedback.comment},
            }
            for turn, feedback in rows
        ],
    }


async def delete_conversation(
    sessions: async_sessionmaker[AsyncSession], reader_id: str, conversation_id: str, *, unwritten_ours: bool = False
) -> bool:
    """Delete the reader's conversation (its turns and ratings with it) and keep its id as deleted, so that
    the record of a turn still running cannot bring it back (shared/db/turn_history.py). ``unwritten_ours``:
    the caller knows the conversation is the reader's though the database has none of it yet (its first
    turns still running, or their records still waiting in Redis); it is marked deleted all the same."""
    async with sessions.begin() as session:
        result = await session.execute(
            delete(Conversation).where(Conversation.id == conversation_id, Conversation.reader_id == reader_id)
        )
        deleted = bool(result.rowcount)  # type: ignore[attr-defined]
        if not deleted and (
            not unwritten_ours
            or await session.scalar(select(Conversation.id).where(Conversation.id == conversation_id))
        ):
            return False  # not the reader's (or known nowhere)
        insert = upsert_statement(session, DeletedConversation).values(id=conversation_id, deleted_at=utc_now())
        await session.execute(insert.on_conflict_do_nothing(index_elements=[DeletedConversation.id]))
    return True


async def conversation_owner(sessions: async_sessionmaker[AsyncSession], conversation_id: str) -> Owner:
    async with sessions() as session:
        row = (await session.execute(select(Conversation.reader_id).where(Conversation.id == conversation_id))).first()
        if row is None:
            deleted = await session.scalar(
                select(DeletedConversation.id).where(DeletedConversation.id == conversation_id)
            )
            return Owner(exists=False, reader_id=None, deleted=deleted is not None)
    return Owner(exists=True, reader_id=row[0])


async def purge_idle_conversations(sessions: async_sessionmaker[AsyncSession], older_than_days: int) -> int:
    """Delete conversations (their turns and feedback with them) untouched for ``older_than_days``, and the
    ids of conversations deleted and of readers joined that long ago (no record of theirs still waits by then)."""
    cutoff = utc_now() - timedelta(days=older_than_days)
    async with sessions.begin() as session:
        result = await session.execute(delete(Conversation).where(Conversation.updated_at < cutoff))
        await session.execute(delete(DeletedConversation).where(DeletedConversation.deleted_at < cutoff))
        await session.execute(delete(JoinedReader).where(JoinedReader.joined_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
