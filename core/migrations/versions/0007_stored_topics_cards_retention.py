"""stored topic names and case cards; the outbox's participant, for fair staff queues and retention

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows written before this revision have none: a recreated topic is then named "#<user>", as before.
    with op.batch_alter_table("participant_topics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=128), nullable=True))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_html", sa.Text(), nullable=True))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic_user", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_outbox_sent_at", ["sent_at"])
    with op.batch_alter_table("case_messages", schema=None) as batch_op:
        batch_op.create_index("ix_case_messages_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("case_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_case_messages_created_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_sent_at")
        batch_op.drop_column("topic_user")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("card_html")
    with op.batch_alter_table("participant_topics", schema=None) as batch_op:
        batch_op.drop_column("name")
