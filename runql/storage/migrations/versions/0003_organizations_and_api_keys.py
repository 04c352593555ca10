"""organizations and api keys: every row belongs to an organization

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 05:20:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import runql.storage.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_ORG = "org_00000000000000000000"
OWNED = ["actors", "agents", "threads", "message_groups", "messages", "message_contents",
         "content_parts", "attachments", "runs", "run_errors", "attached_items"]
REINDEXED = {
    "agents": [("ix_agents_created", "ix_agents_org_created", ["org_id", "created_at", "id"])],
    "threads": [("ix_threads_created", "ix_threads_org_created",
                 ["org_id", "created_at", "id"])],
    "runs": [("ix_runs_created", "ix_runs_org_created", ["org_id", "created_at", "id"]),
             ("ix_runs_status_created", "ix_runs_org_status_created",
              ["org_id", "status", "created_at", "id"])],
}


def _time() -> runql.storage.types.UTCDateTime:
    return runql.storage.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    organizations = op.create_table(
        "organizations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.bulk_insert(organizations, [
        {"id": DEFAULT_ORG, "name": "default", "created_at": datetime.now(UTC)}])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=32), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    op.create_index("ix_api_keys_org_id", "api_keys", ["org_id"])
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("org_id", sa.String(length=40), nullable=False,
                                       server_default=DEFAULT_ORG))
            batch.create_foreign_key(f"fk_{table}_org_id", "organizations", ["org_id"], ["id"])
            for old, _, _ in REINDEXED.get(table, []):
                batch.drop_index(old)
        with op.batch_alter_table(table) as batch:
            batch.alter_column("org_id", server_default=None)
            for _, new, columns in REINDEXED.get(table, []):
                batch.create_index(new, columns)
    op.create_table(
        "idempotency_keys_scoped",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("org_id", "key"),
    )
    op.execute(
        "INSERT INTO idempotency_keys_scoped (org_id, key, request_hash, run_id, created_at) "
        f"SELECT '{DEFAULT_ORG}', key, request_hash, run_id, created_at FROM idempotency_keys"
    )
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_scoped", "idempotency_keys")
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    raise NotImplementedError("organizations cannot be merged back into one tenant")
