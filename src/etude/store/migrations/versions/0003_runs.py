"""Tracked runs (`etude.tracking`): runs, their parameters, tags, user properties and metric
summaries, and the read offset of `runs/edits.log`.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _run_pk() -> sa.Column:
    return sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
                     primary_key=True)


def _values(name: str, key: str, *extra: sa.Column) -> None:
    op.create_table(
        name, _run_pk(), sa.Column(key, sa.String(512), primary_key=True), *extra,
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("num", sa.Double), sa.Column("text", sa.Text),
    )


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("pk", sa.Integer, primary_key=True),
        sa.Column("workspace_pk", sa.Integer,
                  sa.ForeignKey("workspaces.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE")),
        sa.Column("project", sa.String(512), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32)),
        sa.Column("message", sa.Text),
        sa.Column("comment", sa.Text),
        sa.Column("parent", sa.String(64)),
        sa.Column("tags", sa.Text),
        sa.Column("host", sa.String(255)),
        sa.Column("created", sa.Double),
        sa.Column("started", sa.Double),
        sa.Column("ended", sa.Double),
        sa.Column("modified", sa.Double),
        sa.Column("heartbeat", sa.Double),
        sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("outputs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated", sa.Double, nullable=False),
        sa.UniqueConstraint("workspace_pk", "id", name="uq_runs_id"),
    )
    op.create_index("ix_runs_project", "runs", ["workspace_pk", "project"])
    op.create_index("ix_runs_state", "runs", ["workspace_pk", "state"])
    op.create_index("ix_runs_created", "runs", ["workspace_pk", "created"])
    op.create_index("ix_runs_job", "runs", ["job_pk"])
    _values("run_params", "path", sa.Column("key", sa.String(512), nullable=False))
    op.create_index("ix_run_params_key", "run_params", ["key", "num", "kind", "run_pk"])
    op.create_index("ix_run_params_path", "run_params",
                    ["path", "num", "kind", "run_pk"])
    _values("run_tags", "name")
    op.create_index("ix_run_tags_name", "run_tags", ["name", "text", "run_pk"])
    _values("run_properties", "key")
    op.create_index("ix_run_properties_key", "run_properties",
                    ["key", "num", "kind", "run_pk"])
    op.create_table(
        "run_metrics", _run_pk(),
        sa.Column("title", sa.String(255), primary_key=True),
        sa.Column("series", sa.String(255), primary_key=True),
        sa.Column("last", sa.Double), sa.Column("min", sa.Double), sa.Column("max", sa.Double),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("iteration", sa.BigInteger),
    )
    op.create_index("ix_run_metrics_last", "run_metrics", ["title", "series", "last", "run_pk"])
    op.create_table(
        "run_edits",
        sa.Column("workspace_pk", sa.Integer,
                  sa.ForeignKey("workspaces.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("offset", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("run_edits", "run_metrics", "run_properties", "run_tags", "run_params",
                  "runs"):
        op.drop_table(table)
