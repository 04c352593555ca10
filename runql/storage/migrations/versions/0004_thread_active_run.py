"""thread active run: the run a thread is executing, set and cleared with the run's status

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.add_column(sa.Column("active_run_id", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE threads SET active_run_id = (SELECT runs.id FROM runs WHERE runs.thread_id = "
        "threads.id AND runs.status = 'running' ORDER BY runs.started_at LIMIT 1)"
    )


def downgrade() -> None:
    with op.batch_alter_table("threads") as batch:
        batch.drop_column("active_run_id")
