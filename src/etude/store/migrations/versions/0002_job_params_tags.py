"""Flattened job parameters and tags (for `params.PATH` and `tags.NAME` filters), and the
modification times of scanned folders (to reconcile the index with the workspace).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _values_table(name: str, key: str, key_type: sa.types.TypeEngine) -> None:
    op.create_table(
        name,
        sa.Column(
            "job_pk",
            sa.Integer,
            sa.ForeignKey("jobs.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(key, key_type, primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("num", sa.Double),
        sa.Column("text", sa.Text),
    )


def upgrade() -> None:
    _values_table("job_params", "path", sa.String(512))
    op.create_index("ix_job_params_num", "job_params", ["path", "num"])
    _values_table("job_tags", "name", sa.String(255))
    op.create_index("ix_job_tags_name", "job_tags", ["name", "text"])
    op.create_table(
        "scanned_dirs",
        sa.Column(
            "workspace_pk",
            sa.Integer,
            sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("mtime", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in ("scanned_dirs", "job_tags", "job_params"):
        op.drop_table(table)
