"""Queues and agents (`etude agent`): the queued runs an agent may claim, and the agents.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _workspace_pk() -> sa.Column:
    return sa.Column("workspace_pk", sa.Integer,
                     sa.ForeignKey("workspaces.pk", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "queue_entries",
        sa.Column("pk", sa.Integer, primary_key=True),
        _workspace_pk(),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("enqueued", sa.Double, nullable=False),
        sa.Column("agent", sa.String(64)),
        sa.Column("claimed", sa.Double),
        sa.UniqueConstraint("workspace_pk", "run_id", name="uq_queue_entries_run"),
    )
    op.create_index("ix_queue_entries_next", "queue_entries",
                    ["workspace_pk", "queue", "agent", "enqueued"])
    op.create_table(
        "agents",
        sa.Column("pk", sa.Integer, primary_key=True),
        _workspace_pk(),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("queues", sa.Text, nullable=False),
        sa.Column("launcher", sa.String(255), nullable=False),
        sa.Column("started", sa.Double, nullable=False),
        sa.Column("heartbeat", sa.Double, nullable=False),
        sa.Column("running", sa.Text, nullable=False),
        sa.Column("stopped", sa.Double),
        sa.UniqueConstraint("workspace_pk", "id", name="uq_agents_id"),
    )


def downgrade() -> None:
    op.drop_index("ix_queue_entries_next", "queue_entries")
    for table in ("agents", "queue_entries"):
        op.drop_table(table)
