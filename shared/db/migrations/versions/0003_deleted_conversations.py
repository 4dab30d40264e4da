"""deleted_conversations: the ids of deleted conversations, so that a late turn record cannot bring one back

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 08:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deleted_conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("deleted_at", shared.db.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_conversations")),
    )
    op.create_index(op.f("ix_deleted_conversations_deleted_at"), "deleted_conversations", ["deleted_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deleted_conversations_deleted_at"), table_name="deleted_conversations")
    op.drop_table("deleted_conversations")
