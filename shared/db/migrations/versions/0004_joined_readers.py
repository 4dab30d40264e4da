"""joined_readers: which account an anonymous reader joined, so that its late turn records follow it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "joined_readers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("reader_id", sa.String(length=32), nullable=False),
        sa.Column("joined_at", shared.db.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reader_id"], ["readers.id"], name=op.f("fk_joined_readers_reader_id_readers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_joined_readers")),
    )
    op.create_index(op.f("ix_joined_readers_joined_at"), "joined_readers", ["joined_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_joined_readers_joined_at"), table_name="joined_readers")
    op.drop_table("joined_readers")
