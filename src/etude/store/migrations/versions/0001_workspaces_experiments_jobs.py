"""Workspaces, experiments and their runs, jobs and the experiments that use them.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("created", sa.Double, nullable=False),
    )
    op.create_table(
        "experiments",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "workspace_pk",
            sa.Integer,
            sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.UniqueConstraint("workspace_pk", "name", name="uq_experiments_name"),
    )
    op.create_table(
        "experiment_runs",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "experiment_pk",
            sa.Integer,
            sa.ForeignKey("experiments.pk", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("started", sa.Double, nullable=False),
        sa.Column("ended", sa.Double),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("create_time", sa.Double),
        sa.Column("jobs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("counts", sa.Text),
        sa.UniqueConstraint("experiment_pk", "started", name="uq_experiment_runs_started"),
    )
    op.create_table(
        "jobs",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column(
            "workspace_pk",
            sa.Integer,
            sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("message", sa.Text),
        sa.Column("submitted", sa.Double),
        sa.Column("started", sa.Double),
        sa.Column("ended", sa.Double),
        sa.Column("duration", sa.Double),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("launcher", sa.String(64)),
        sa.Column("cluster_job_id", sa.String(64)),
        sa.Column("experiment", sa.String(255)),
        sa.Column("tags", sa.Text),
        sa.Column("problems", sa.Text),
        sa.Column("updated", sa.Double, nullable=False),
        sa.UniqueConstraint("workspace_pk", "folder", name="uq_jobs_folder"),
    )
    op.create_index("ix_jobs_state", "jobs", ["workspace_pk", "state"])
    op.create_index("ix_jobs_task", "jobs", ["workspace_pk", "task"])
    op.create_index("ix_jobs_submitted", "jobs", ["workspace_pk", "submitted"])
    op.create_index("ix_jobs_id", "jobs", ["workspace_pk", "id"])
    op.create_table(
        "job_experiments",
        sa.Column(
            "job_pk",
            sa.Integer,
            sa.ForeignKey("jobs.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "experiment_pk",
            sa.Integer,
            sa.ForeignKey("experiments.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_job_experiments_experiment", "job_experiments", ["experiment_pk"])


def downgrade() -> None:
    for table in ("job_experiments", "jobs", "experiment_runs", "experiments", "workspaces"):
        op.drop_table(table)
