"""Runs in the index: reading run folders into rows, and keeping the rows current.

Two kinds of runs share the `runs` table (SPEC: one record, one UI):
- `run`: a `Run.init()` run, folder `runs/ID/` (see `workspace.run_folder`);
- `job`: the run of a job of front doors 1 and 2, written with the job's row (same
  transaction) from the job's record: its configuration as parameters of section `Config`,
  its tags as `name=value`, its state mapped (done -> completed, error -> failed or aborted,
  waiting -> queued); what its code reported (`Run.current()` inside `execute()`) comes from
  the job folder's `.etude/run/`.

`refresh_runs` ingests what changed behind the index's back, cheaply: the `runs/` folder is
listed again only when its modification time changed; runs the index holds as running (or
queued) are read again; and runs named in `runs/edits.log` since the last refresh.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..workspace import CorruptFileError
from ..workspace.run_folder import (
    EDITS_LOG,
    RUNS_DIR,
    RunFolder,
    effective_status,
    job_run_folder,
    job_run_id,
    read_edits,
)
from .database import chunks, insert_for, insert_rows
from .records import JobRecord, Value, typed_value

JOB_STATE_TO_RUN = {"done": "completed", "running": "running", "waiting": "queued",
                    "unscheduled": "draft"}
ABORT_REASONS = frozenset({"cancelled", "timeout"})
#: A run folder without run.json younger than this may be a live run's, before its first flush.
PENDING_SECONDS = 60.0


@dataclass
class RunRecord:
    """One run as the index holds it; `folder` is relative to the workspace."""

    id: str
    kind: str
    folder: str
    project: str
    name: str
    type: str
    state: str
    reason: str | None = None
    message: str | None = None
    comment: str | None = None
    parent: str | None = None
    tags: list[str] = field(default_factory=list)
    host: str | None = None
    created: float | None = None
    started: float | None = None
    ended: float | None = None
    modified: float | None = None
    heartbeat: float | None = None
    archived: bool = False
    outputs: int = 0
    params: dict[str, Any] = field(default_factory=dict)  # "Section/key" -> JSON value
    properties: dict[str, Any] = field(default_factory=dict)
    metrics: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    job_folder: str | None = None  # kind "job": the job's folder, to find its pk

    def row(self, ws: int, job_pk: int | None) -> dict[str, Any]:
        return {
            "workspace_pk": ws, "id": self.id, "kind": self.kind, "folder": self.folder,
            "job_pk": job_pk, "project": self.project, "name": self.name, "type": self.type,
            "state": self.state, "reason": self.reason, "message": self.message,
            "comment": self.comment, "parent": self.parent, "tags": json.dumps(self.tags),
            "host": self.host, "created": self.created, "started": self.started,
            "ended": self.ended, "modified": self.modified, "heartbeat": self.heartbeat,
            "archived": self.archived, "outputs": self.outputs, "updated": time.time(),
        }


# -- reading folders --------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _time(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _outputs(meta: dict[str, Any]) -> int:
    models = meta.get("models") or {}
    return len(meta.get("artifacts") or {}) + sum(len(models.get(side) or {})
                                                  for side in ("input", "output"))


def _sections(meta: dict[str, Any]) -> dict[str, Any]:
    params = meta.get("params") or {}
    return {f"{section}/{key}": value for section, values in params.items()
            if isinstance(values, dict) for key, value in values.items()}


def _metrics(status: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    metrics = status.get("metrics") or {}
    return {(title, series): summary for title, by_series in metrics.items()
            if isinstance(by_series, dict) for series, summary in by_series.items()
            if isinstance(summary, dict)}


def read_run(root: Path, relative: str) -> RunRecord | None:
    """The record of the `Run.init()` run in `root/relative`; None when it has no run.json
    (being created, or not a run folder). A damaged file raises CorruptFileError."""
    folder = RunFolder(root / relative)
    try:
        meta = folder.read_meta()
    except FileNotFoundError:
        return None
    status = effective_status(folder, folder.read_status(meta))
    state = "published" if meta.get("published") else str(status.get("state") or "draft")
    return RunRecord(
        id=folder.run_id, kind="run", folder=relative,
        project=str(meta.get("project") or ""), name=str(meta.get("name") or ""),
        type=str(meta.get("type") or "training"), state=state,
        reason=status.get("reason"), message=status.get("message"),
        comment=meta.get("comment"), parent=meta.get("parent"),
        tags=[str(tag) for tag in meta.get("tags") or []], host=status.get("host"),
        created=_time(meta.get("created")), started=_time(status.get("started")),
        ended=_time(status.get("ended")),
        modified=max(filter(None, [_time(meta.get("modified")),
                                   _time(status.get("heartbeat"))]), default=None),
        heartbeat=_time(status.get("heartbeat")), archived=bool(meta.get("archived")),
        outputs=_outputs(meta), params=_sections(meta),
        properties=dict(meta.get("user_properties") or {}), metrics=_metrics(status),
    )


def job_run(root: Path, job: JobRecord) -> RunRecord:
    """The run record of a job: from the job's record, plus what its code reported."""
    state = JOB_STATE_TO_RUN.get(job.state, "failed")
    if job.state == "error" and job.reason in ABORT_REASONS:
        state = "aborted"
    folder = job_run_folder(root / job.folder, job_run_id(job.folder))
    meta: dict[str, Any] = {}
    status: dict[str, Any] = {}
    try:
        meta = folder.read_meta()
        status = folder.read_status(meta)
    except (FileNotFoundError, CorruptFileError):
        pass  # the job's code reported nothing (or is writing it now)
    params = {f"Config/{path}": _plain(value) for path, value in (job.params or {}).items()}
    params.update(_sections(meta))
    tags = [f"{name}={_tag_text(value)}" for name, value in job.tags.items()]
    tags += [str(tag) for tag in meta.get("tags") or [] if tag not in tags]
    return RunRecord(
        id=folder.run_id, kind="job", folder=job.folder, project=job.experiment or "jobs",
        name=job.task.rsplit(".", 1)[-1], type=str(meta.get("type") or "training"),
        state="published" if meta.get("published") else state, reason=job.reason,
        message=job.message, comment=meta.get("comment"), parent=meta.get("parent"),
        tags=tags, host=status.get("host"), created=job.submitted, started=job.started,
        ended=job.ended, modified=max(filter(None, [job.ended, job.started, job.submitted,
                                                    _time(status.get("heartbeat"))]),
                                      default=None),
        heartbeat=_time(status.get("heartbeat")), archived=bool(meta.get("archived")),
        outputs=_outputs(meta), params=params,
        properties=dict(meta.get("user_properties") or {}), metrics=_metrics(status),
        job_folder=job.folder,
    )


def _plain(value: Value) -> Any:
    kind, num, text = value
    if kind == "null":
        return None
    if kind == "bool":
        return num == 1.0
    if kind == "int":
        return int(text) if text is not None else None
    if kind == "float":
        return float(text) if text is not None else num
    if kind == "json" and text is not None:
        return json.loads(text)
    return text


def _tag_text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def tag_value(tag: str) -> tuple[str, Value]:
    """(name, typed value) of a tag: `lr=0.1` is name lr, value 0.1; `cnn` has no value."""
    name, sep, text = tag.partition("=")
    if not sep:
        return tag, ("null", None, None)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    if isinstance(parsed, (dict, list)):
        parsed = text
    return name, typed_value(parsed)


# -- writing ------------------------------------------------------------------------------
def write_runs_in(connection: sa.Connection, ws: int, records: Sequence[RunRecord],
                  job_pks: dict[str, int] | None = None, *, fresh: bool = False) -> None:
    """Insert or replace `records` (by id) and their side rows, in the caller's transaction;
    `fresh`: none of them is in the index (a rebuild): plain INSERTs, nothing to delete."""
    from .schema import run_metrics, run_params, run_properties, run_tags, runs

    if not records:
        return
    latest = {record.id: record for record in records}
    ordered = [latest[key] for key in sorted(latest)]
    rows = [r.row(ws, (job_pks or {}).get(r.job_folder or "")) for r in ordered]
    side = (run_params, run_tags, run_properties, run_metrics)
    if fresh:
        for chunk in chunks(rows, 2000):
            insert_rows(connection, runs, chunk)
    else:
        stmt = insert_for(connection, runs)
        columns = [c.name for c in runs.c if c.name not in ("pk", "workspace_pk", "id")]
        stmt = stmt.on_conflict_do_update(index_elements=["workspace_pk", "id"],
                                          set_={name: stmt.excluded[name] for name in columns})
        for chunk in chunks(rows):
            connection.execute(stmt, list(chunk))
    pks = run_pks(connection, ws, [r.id for r in ordered])
    if not fresh:
        for chunk in chunks(list(pks.values())):
            for table in side:
                connection.execute(table.delete().where(table.c.run_pk.in_(chunk)))
    _insert_side_rows(connection, pks, ordered, side)


def _insert_side_rows(connection: sa.Connection, pks: dict[str, int],
                      records: Sequence[RunRecord], tables: tuple[sa.Table, ...]) -> None:
    params, tags, properties, metrics = [], [], [], []
    for record in records:
        pk = pks[record.id]
        for path, value in record.params.items():
            kind, num, text = typed_value(value)
            params.append({"run_pk": pk, "path": path[:512], "key": path.split("/", 1)[-1][:512],
                           "kind": kind, "num": num, "text": text})
        for tag in dict.fromkeys(record.tags):
            name, (kind, num, text) = tag_value(tag)
            tags.append({"run_pk": pk, "name": name[:512], "kind": kind, "num": num,
                         "text": text})
        for key, value in record.properties.items():
            kind, num, text = typed_value(value)
            properties.append({"run_pk": pk, "key": str(key)[:512], "kind": kind, "num": num,
                               "text": text})
        for (title, series), summary in record.metrics.items():
            metrics.append({"run_pk": pk, "title": title[:255], "series": series[:255],
                            "last": _number(summary.get("last")),
                            "min": _number(summary.get("min")),
                            "max": _number(summary.get("max")),
                            "count": int(summary.get("count") or 0),
                            "iteration": summary.get("iteration")
                            if isinstance(summary.get("iteration"), int) else None})
    for table, rows in zip(tables, (params, tags, properties, metrics), strict=True):
        for chunk in chunks(_unique(rows, table), 5000):
            insert_rows(connection, table, chunk)


def _unique(rows: list[dict[str, Any]], table: sa.Table) -> list[dict[str, Any]]:
    """Rows with distinct primary keys (truncated keys may collide): the last one wins."""
    keys = [c.name for c in table.primary_key.columns]
    return list({tuple(row[k] for k in keys): row for row in rows}.values())


def run_pks(connection: sa.Connection, ws: int, ids: Sequence[str]) -> dict[str, int]:
    from .schema import runs

    found: dict[str, int] = {}
    for chunk in chunks(ids):
        query = sa.select(runs.c.id, runs.c.pk).where(runs.c.workspace_pk == ws,
                                                      runs.c.id.in_(chunk))
        found.update({run_id: pk for run_id, pk in connection.execute(query)})
    return found


def delete_runs_in(connection: sa.Connection, ws: int, ids: Iterable[str]) -> None:
    from .schema import runs

    for chunk in chunks(list(ids)):
        connection.execute(runs.delete().where(runs.c.workspace_pk == ws, runs.c.id.in_(chunk)))


def run_folder_names(root: Path) -> list[str]:
    """The names of the run folders under `root/runs/` (hidden entries and the edits log
    left out)."""
    try:
        entries = os.scandir(root / RUNS_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    with entries:
        return sorted(entry.name for entry in entries
                      if not entry.name.startswith(".") and entry.name != EDITS_LOG
                      and entry.is_dir())


__all__ = ["RunRecord", "delete_runs_in", "job_run", "read_edits", "read_run",
           "run_folder_names", "write_runs_in"]


# -- reconciling ------------------------------------------------------------------------------
def refresh_runs(store: Any) -> int:
    """Ingest the runs that changed behind the index's back (see the module); returns how
    many rows were written or removed."""
    from .database import run_write
    from .schema import run_edits, runs, scanned_dirs

    root = store.workspace.path
    ws = store.workspace_pk
    with store.engine.connect() as connection:
        scanned = connection.execute(sa.select(scanned_dirs.c.mtime).where(
            scanned_dirs.c.workspace_pk == ws, scanned_dirs.c.path == RUNS_DIR)).scalar()
        live = connection.execute(sa.select(runs.c.id, runs.c.kind, runs.c.folder).where(
            runs.c.workspace_pk == ws, runs.c.state.in_(("running", "queued")))).all()
        offset = connection.execute(sa.select(run_edits.c.offset).where(
            run_edits.c.workspace_pk == ws)).scalar() or 0
    mtime = _mtime(root / RUNS_DIR)
    listed = mtime is not None and mtime != scanned
    known: dict[str, str] = {}
    if listed or (mtime is None and scanned is not None):
        with store.engine.connect() as connection:
            known = dict(connection.execute(sa.select(runs.c.id, runs.c.folder).where(
                runs.c.workspace_pk == ws, runs.c.kind == "run")).all())
    names = run_folder_names(root) if listed else []
    edited, new_offset = read_edits(root, int(offset))
    targets = {name: f"{RUNS_DIR}/{name}" for name in names if name not in known}
    job_targets: set[str] = set()
    for run_id, kind, folder in live:
        if kind == "run":
            targets[run_id] = folder
        else:
            job_targets.add(folder)
    if edited:
        with store.engine.connect() as connection:
            rows = connection.execute(sa.select(runs.c.id, runs.c.kind, runs.c.folder).where(
                runs.c.workspace_pk == ws, runs.c.id.in_(sorted(set(edited))))).all()
        for run_id, kind, folder in rows:
            if kind == "run":
                targets[run_id] = folder
            else:
                job_targets.add(folder)
        targets.update({i: f"{RUNS_DIR}/{i}" for i in edited if i not in known
                        and (root / RUNS_DIR / i).is_dir()})
    records = [record for record in (_read_quietly(root, f) for f in sorted(targets.values()))
               if record is not None]
    if listed and len(records) < len(targets) and _being_created(
            root, {name for name in names if name not in known}, {r.id for r in records}):
        listed_whole = False  # list runs/ again next time: its run.json is on its way
    else:
        listed_whole = listed
    removed = sorted(set(known) - set(names)) if listed or mtime is None else []
    if not (records or removed or job_targets or listed or new_offset != offset):
        return 0

    def work(connection: sa.Connection) -> None:
        write_runs_in(connection, ws, records)
        delete_runs_in(connection, ws, removed)
        if job_targets:
            _rewrite_job_runs(store, connection, ws, sorted(job_targets))
        if listed_whole and mtime is not None:
            _set_scanned(connection, ws, mtime)
        if new_offset != offset:
            _set_offset(connection, ws, new_offset)

    run_write(store.engine, work)
    return len(records) + len(removed) + len(job_targets)


def _being_created(root: Path, new: set[str], read: set[str]) -> bool:
    """Whether a run folder just listed had no run.json (when read) but may get one: a live
    run writes it with its first flush, after making the folder (so listing `runs/` again is
    the only way to see it). A folder left without run.json for a minute is not a run."""
    now = time.time()
    for name in new - read:
        try:
            made = os.stat(root / RUNS_DIR / name).st_mtime
        except OSError:
            continue
        if now - made < PENDING_SECONDS:
            return True
    return False


def _read_quietly(root: Path, relative: str) -> RunRecord | None:
    try:
        return read_run(root, relative)
    except CorruptFileError as error:
        import logging

        logging.getLogger("etude.store").warning("run folder %s skipped: %s", relative, error)
        return None


def _mtime(path: Path) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _rewrite_job_runs(store: Any, connection: sa.Connection, ws: int,
                      folders: list[str]) -> None:
    """Write again the runs of these jobs, from the job rows (what the job's code reported
    is read from its folder)."""
    from .rows import job_row
    from .schema import jobs

    query = sa.select(jobs).where(jobs.c.workspace_pk == ws, jobs.c.folder.in_(folders))
    rows = [job_row(row) for row in connection.execute(query).mappings()]
    pks = {row.folder: row.pk for row in rows}
    records = [JobRecord(folder=row.folder, id=row.id, task=row.task, state=row.state,
                         kind=row.kind, reason=row.reason, message=row.message,
                         submitted=row.submitted, started=row.started, ended=row.ended,
                         retries=row.retries, launcher=row.launcher,
                         cluster_job_id=row.cluster_job_id, experiment=row.experiment,
                         tags=row.tags, params=None) for row in rows]
    store._write_job_runs(connection, ws, pks, records)


def _set_scanned(connection: sa.Connection, ws: int, mtime: float) -> None:
    from .schema import scanned_dirs

    stmt = insert_for(connection, scanned_dirs).values(workspace_pk=ws, path=RUNS_DIR, mtime=mtime)
    connection.execute(stmt.on_conflict_do_update(index_elements=["workspace_pk", "path"],
                                                  set_={"mtime": mtime}))


def _set_offset(connection: sa.Connection, ws: int, offset: int) -> None:
    from .schema import run_edits

    stmt = insert_for(connection, run_edits).values(workspace_pk=ws, offset=offset)
    connection.execute(stmt.on_conflict_do_update(index_elements=["workspace_pk"],
                                                  set_={"offset": offset}))


def rebuild_runs_in(store: Any, connection: sa.Connection, ws: int) -> int:
    """Insert every `Run.init()` run of the workspace (after `clear_in`); job runs come with
    their jobs."""
    root = store.workspace.path
    names = run_folder_names(root)
    records = [r for r in (_read_quietly(root, f"{RUNS_DIR}/{n}") for n in names)
               if r is not None]
    write_runs_in(connection, ws, records)
    mtime = _mtime(root / RUNS_DIR)
    if mtime is not None:
        _set_scanned(connection, ws, mtime)
    _, offset = read_edits(root, 0)
    _set_offset(connection, ws, offset)
    return len(records)


def job_config_params(job_path: Path) -> dict[str, Any]:
    """`{"Config/PATH": value}`: the configuration of the job in `job_path` (a task's
    `params.json`, or a pydantic-infra folder's `config.json`), as its run shows it."""
    from ..workspace.layout import ETUDE_DIR
    from .records import infra_config, read_object, task_config

    problems: list[str] = []
    where = str(job_path / ETUDE_DIR / "params.json")
    meta = read_object(where, problems)
    if meta is not None and "config" in meta:
        flat = task_config(meta, where, problems)
    else:
        flat = infra_config(job_path, problems)
    return {f"Config/{path}": _plain(value) for path, value in flat.items()}
