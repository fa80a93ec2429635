"""The index's tables (SQLAlchemy Core). Every change here comes with an Alembic revision in
`migrations/versions/` and a new `HEAD`; `tests/store/test_migrations.py` checks they agree.

One database may hold the index of several workspaces (a team's PostgreSQL): every row hangs
off a `workspaces` row, and every query is scoped to one workspace.

Times are seconds since the epoch (floats). `job_params` and `job_tags` hold one row per
flattened value: `num` for numbers and booleans (so they compare as numbers), `text` for the
value as text (strings, and the text form of every scalar), `kind` for its type.
"""

from __future__ import annotations

import sqlalchemy as sa

#: Alembic revisions, oldest first; the last one is the schema this code reads and writes.
REVISIONS = ("0001", "0002", "0003", "0004", "0005")
HEAD = REVISIONS[-1]

metadata = sa.MetaData()

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column("path", sa.Text, nullable=False, unique=True),
    sa.Column("created", sa.Double, nullable=False),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.UniqueConstraint("workspace_pk", "name", name="uq_experiments_name"),
)

experiment_runs = sa.Table(
    "experiment_runs",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "experiment_pk", sa.Integer, sa.ForeignKey("experiments.pk", ondelete="CASCADE"),
        nullable=False, index=True,
    ),
    sa.Column("started", sa.Double, nullable=False),
    sa.Column("ended", sa.Double),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("create_time", sa.Double),  # the process's start time, to tell a reused pid
    sa.Column("jobs", sa.Integer, nullable=False, server_default="0"),
    sa.Column("counts", sa.Text),  # JSON {state: count} when the run ended
    sa.Column("outcome", sa.String(16)),  # completed, failed or interrupted, once ended
    sa.UniqueConstraint("experiment_pk", "started", name="uq_experiment_runs_started"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("folder", sa.Text, nullable=False),  # relative to the workspace
    sa.Column("id", sa.String(255), nullable=False),  # the folder's name: identifier or uid
    sa.Column("kind", sa.String(16), nullable=False),  # "task" or "infra"
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
    sa.Column("experiment", sa.String(255)),  # the experiment that launched its latest attempt
    sa.Column("tags", sa.Text),  # JSON object, as shown
    sa.Column("problems", sa.Text),  # JSON list: files of the folder that could not be read
    sa.Column("updated", sa.Double, nullable=False),
    sa.UniqueConstraint("workspace_pk", "folder", name="uq_jobs_folder"),
    sa.Index("ix_jobs_state", "workspace_pk", "state"),
    sa.Index("ix_jobs_task", "workspace_pk", "task"),
    sa.Index("ix_jobs_submitted", "workspace_pk", "submitted"),
    sa.Index("ix_jobs_id", "workspace_pk", "id"),
)

job_experiments = sa.Table(
    "job_experiments",
    metadata,
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column(
        "experiment_pk", sa.Integer, sa.ForeignKey("experiments.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Index("ix_job_experiments_experiment", "experiment_pk"),
)

# -- revision 0002 ------------------------------------------------------------------------
job_params = sa.Table(
    "job_params",
    metadata,
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("path", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("num", sa.Double),
    sa.Column("text", sa.Text),
    sa.Index("ix_job_params_num", "path", "num"),
)

job_tags = sa.Table(
    "job_tags",
    metadata,
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("num", sa.Double),
    sa.Column("text", sa.Text),
    sa.Index("ix_job_tags_name", "name", "text"),
)

#: Modification times of the folders holding job folders, to find jobs created or deleted
#: behind the index's back without listing every folder (see `reconcile`).
scanned_dirs = sa.Table(
    "scanned_dirs",
    metadata,
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("path", sa.Text, primary_key=True),  # relative to the workspace
    sa.Column("mtime", sa.Double, nullable=False),
)


# -- revision 0003: tracked runs ----------------------------------------------------------
#: One row per run: a `Run.init()` run (kind "run", folder `runs/ID`) or the run of a job of
#: front doors 1 and 2 (kind "job", folder: the job's, `job_pk` its row). Written only by
#: readers' reconciliation from the run folders (see `runs.py`).
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("folder", sa.Text, nullable=False),  # relative to the workspace
    sa.Column("job_pk", sa.Integer, sa.ForeignKey("jobs.pk", ondelete="CASCADE")),
    sa.Column("project", sa.String(512), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("message", sa.Text),
    sa.Column("comment", sa.Text),
    sa.Column("parent", sa.String(64)),
    sa.Column("tags", sa.Text),  # JSON list, as shown
    sa.Column("host", sa.String(255)),
    sa.Column("created", sa.Double),
    sa.Column("started", sa.Double),
    sa.Column("ended", sa.Double),
    sa.Column("modified", sa.Double),
    sa.Column("heartbeat", sa.Double),
    sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("outputs", sa.Integer, nullable=False, server_default="0"),  # artifacts + models
    sa.Column("updated", sa.Double, nullable=False),
    sa.UniqueConstraint("workspace_pk", "id", name="uq_runs_id"),
    sa.Index("ix_runs_project", "workspace_pk", "project"),
    sa.Index("ix_runs_state", "workspace_pk", "state"),
    sa.Index("ix_runs_created", "workspace_pk", "created"),
    sa.Index("ix_runs_job", "job_pk"),
)


def _run_values(name: str, key: str, *extra: sa.Column[object]) -> sa.Table:
    """A side table of typed values of runs (parameters, tags, user properties)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column(key, sa.String(512), primary_key=True),
        *extra,
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("num", sa.Double),
        sa.Column("text", sa.Text),
    )


#: `path` is "Section/key"; `key` the part after the section, for `params.KEY`.
run_params = _run_values("run_params", "path", sa.Column("key", sa.String(512), nullable=False))
# The indexes hold kind and end with run_pk so that a filter's `pk IN (SELECT run_pk ...)`
# reads the index alone (without it, 80,000 matches cost 80,000 table lookups: 0.2 s).
sa.Index("ix_run_params_key", run_params.c.key, run_params.c.num, run_params.c.kind,
         run_params.c.run_pk)
sa.Index("ix_run_params_path", run_params.c.path, run_params.c.num, run_params.c.kind,
         run_params.c.run_pk)
run_tags = _run_values("run_tags", "name")
sa.Index("ix_run_tags_name", run_tags.c.name, run_tags.c.text, run_tags.c.run_pk)
run_properties = _run_values("run_properties", "key")
sa.Index("ix_run_properties_key", run_properties.c.key, run_properties.c.num,
         run_properties.c.kind, run_properties.c.run_pk)

#: The summary of each scalar series: NaN is NULL here (the run's files keep it).
run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.pk", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("title", sa.String(255), primary_key=True),
    sa.Column("series", sa.String(255), primary_key=True),
    sa.Column("last", sa.Double),
    sa.Column("min", sa.Double),
    sa.Column("max", sa.Double),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("iteration", sa.BigInteger),
    sa.Index("ix_run_metrics_last", "title", "series", "last", "run_pk"),
)

#: Where each workspace's reconciliation stopped reading `runs/edits.log`.
run_edits = sa.Table(
    "run_edits",
    metadata,
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("offset", sa.BigInteger, nullable=False),
)


# -- revision 0004: queues and agents ---------------------------------------------------------
#: A queued run an agent may claim (`agent` set when one did). The run folder's status.json is
#: the truth (state "queued", its queue); this table makes the claim atomic and is re-derived
#: from the folders when they disagree (`queue.py: sync_entries`).
queue_entries = sa.Table(
    "queue_entries",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("enqueued", sa.Double, nullable=False),
    sa.Column("agent", sa.String(64)),
    sa.Column("claimed", sa.Double),
    sa.UniqueConstraint("workspace_pk", "run_id", name="uq_queue_entries_run"),
    sa.Index("ix_queue_entries_next", "workspace_pk", "queue", "agent", "enqueued"),
)

#: One row per agent that served this workspace; `running` is a JSON list of run ids.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True),
    sa.Column(
        "workspace_pk", sa.Integer, sa.ForeignKey("workspaces.pk", ondelete="CASCADE"),
        nullable=False,
    ),
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
