"""The durable tables: readers, their conversations, the turns of those, and the readers' feedback.

One set of models (and of Alembic migrations, shared/db/migrations) for Postgres and SQLite. Times are
stored as UTC; rows are keyed by the ids the service already uses (a turn by its turn id), so writing the
same record twice changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RATINGS = ("up", "down")
REASONS = ("wrong", "not_in_book", "unclear", "other")
TITLE_CHARS = 120


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both backends (SQLite keeps no zone: it stores UTC and reads it back as such)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # named constraints, so that migrations can refer to them on every backend
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime}


class Reader(Base):
    """Someone who keeps history: anonymous (a bearer token, stored only as its SHA-256) or signed in
    (``subject``: the id token's ``iss`` and ``sub``)."""

    __tablename__ = "readers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    subject: Mapped[str | None] = mapped_column(String(512), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class JoinedReader(Base):
    """An anonymous reader whose history joined a signed-in account (``reader_id``) at its first signed-in
    visit: a turn it still had running writes its record afterwards, and the writer files it under the
    account instead of dropping it as a deleted reader's (shared/db/turn_history.py)."""

    __tablename__ = "joined_readers"
    __table_args__ = (Index("ix_joined_readers_joined_at", "joined_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    reader_id: Mapped[str] = mapped_column(String(32), ForeignKey("readers.id", ondelete="CASCADE"))
    joined_at: Mapped[datetime] = mapped_column(default=utc_now)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # the reader's list, newest first, paged by (updated_at, id)
        Index("ix_conversations_reader_recent", "reader_id", "updated_at", "id"),
        Index("ix_conversations_updated_at", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    reader_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("readers.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_CHARS))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class DeletedConversation(Base):
    """A conversation its reader deleted, kept as its id alone: a turn of it that was still running when it
    was deleted writes its record afterwards, and the writer drops it instead of bringing the conversation
    back (shared/db/turn_history.py). Purged with the history retention."""

    __tablename__ = "deleted_conversations"
    __table_args__ = (Index("ix_deleted_conversations_deleted_at", "deleted_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(default=utc_now)


class Turn(Base):
    """One finished turn, as its client saw it; ``status`` is ``done`` or the error code it ended with."""

    __tablename__ = "turns"
    __table_args__ = (
        Index("ix_turns_conversation_created", "conversation_id", "created_at"),
        Index("ix_turns_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(64), ForeignKey("conversations.id", ondelete="CASCADE"))
    reader_id: Mapped[str | None] = mapped_column(String(32))
    question: Mapped[str] = mapped_column(Text)
    selected_text: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    grounded: Mapped[bool | None] = mapped_column(Boolean)
    first_delta_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column()


class Feedback(Base):
    """A reader's rating of one of their turns (one per turn; rating again replaces it)."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("rating IN ('up', 'down')", name="rating"),
        CheckConstraint("reason IS NULL OR reason IN ('wrong', 'not_in_book', 'unclear', 'other')", name="reason"),
        Index("ix_feedback_updated_at", "updated_at"),
    )

    turn_id: Mapped[str] = mapped_column(String(32), ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True)
    reader_id: Mapped[str] = mapped_column(String(32), ForeignKey("readers.id", ondelete="CASCADE"))
    rating: Mapped[str] = mapped_column(String(4))
    reason: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
