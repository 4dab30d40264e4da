"""Readers' ratings of their own finished turns, and what the admin reads of them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db.models import Conversation, Feedback, Turn, utc_now
from shared.db.text import storable_or_none
from shared.db.upsert import upsert_statement
from shared.protocol import FeedbackFields


async def save_feedback(
    sessions: async_sessionmaker[AsyncSession], reader_id: str, turn_id: str, fields: FeedbackFields
) -> bool:
    """Record (or change) the rating; False when the turn is not one of the reader's finished turns."""
    async with sessions.begin() as session:
        own = await session.scalar(
            select(Turn.id)
            .join(Conversation, Conversation.id == Turn.conversation_id)
            .where(Turn.id == turn_id, Conversation.reader_id == reader_id)
        )
        if own is None:
            return False
        now = utc_now()
        comment = storable_or_none(fields.comment)
        values = {"rating": fields.rating, "reason": fields.reason, "comment": comment, "updated_at": now}
        insert = upsert_statement(session, Feedback).values(
            turn_id=turn_id, reader_id=reader_id, created_at=now, **values
        )
        await session.execute(insert.on_conflict_do_update(index_elements=[Feedback.turn_id], set_=values))
    return True


async def feedback_export(
    sessions: async_sessionmaker[AsyncSession],
    rating: Literal["up", "down"] | None = None,
    since: datetime | None = None,
) -> Sequence[dict[str, Any]]:
    """Each rated turn with its question, answer and sources: the raw material of an evaluation set."""
    query = (
        select(Feedback, Turn).join(Turn, Turn.id == Feedback.turn_id).order_by(Feedback.updated_at, Feedback.turn_id)
    )
    if rating is not None:
        query = query.where(Feedback.rating == rating)
    if since is not None:
        query = query.where(Feedback.updated_at >= since)
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    return [
        {
            "turn_id": turn.id,
            "conversation_id": turn.conversation_id,
            "rated_at": feedback.updated_at.isoformat(),
            "rating": feedback.rating,
            "reason": feedback.reason,
            "comment": feedback.comment,
            "question": turn.question,
            "selected_text": turn.selected_text,
            "answer": turn.answer,
            "sources": turn.sources,
            "provider": turn.provider,
            "status": turn.status,
        }
        for feedback, turn in rows
    ]
