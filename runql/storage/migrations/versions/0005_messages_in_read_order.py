"""messages in read order: the index of a group's messages holds their id too, the last key of
the order they are read in, so that SQLite reads several groups' messages with no sort

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 22:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_group_position_id", "messages", ["message_group_id", "position", "id"]
    )
    op.drop_index("ix_messages_group_position", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_group_position", "messages", ["message_group_id", "position"])
    op.drop_index("ix_messages_group_position_id", table_name="messages")
