"""cases keep when their first agent reply is due (the SLA, counted in business time), for the console's filter and
the stats' share within it, and whether automatic assignment gave them to their agent

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-04 05:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from core.hours import default_support_desk

revision: str = "0015"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1_000


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("first_reply_due", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("auto_assigned", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Cases opened before: due as if the target had applied then (today's support.yaml and calendar).
    desk = default_support_desk()
    connection = op.get_bind()
    cases = sa.table("cases", sa.column("id", sa.Integer), sa.column("opened_at", sa.DateTime(timezone=True)))
    due_column = sa.column("first_reply_due", sa.DateTime(timezone=True))
    last_id = 0
    while True:
        rows = connection.execute(
            sa.select(cases.c.id, cases.c.opened_at).where(cases.c.id > last_id).order_by(cases.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        for case_id, opened_at in rows:
            if opened_at is None:
                continue
            if isinstance(opened_at, str):  # SQLite without a declared type affinity
                opened_at = datetime.fromisoformat(opened_at)
            if opened_at.tzinfo is None:
                opened_at = opened_at.replace(tzinfo=UTC)
            due = desk.first_reply_due(opened_at).astimezone(UTC)
            connection.execute(
                sa.update(sa.table("cases", sa.column("id", sa.Integer), due_column))
                .where(sa.column("id") == case_id)
                .values(first_reply_due=due)
            )
        last_id = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("auto_assigned")
        batch.drop_column("first_reply_due")
