"""Experiments and jobs as the API hands them out: experiments with their state counts, the
jobs of an experiment (with their runs), a job's folder files, and stopping a job.

Blocking code (database, files, signals), called from worker threads.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import threading
from pathlib import Path
from typing import Any

from .source import NotFound, Source

TEXT_LIMIT = 1 << 20  # bytes of a file shown as text; the rest is downloaded
_kill_lock = threading.Lock()


def experiments(source: Source) -> list[dict[str, Any]]:
    """Every experiment: name, status of its last run (running/ended/interrupted), times,
    its jobs' states now, and how many runs it had."""
    from ..cli.experiments import experiment_json

    infos = source.fresh().experiments()
    return [experiment_json(source.workspace, info) for info in infos]


def quote(text: str) -> str:
    """`text` as a string of the filter grammar (a backslash escapes quotes and itself)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_where(experiment: str | None, state: str | None, task: str | None, tag: str | None,
              where: str | None) -> str | None:
    """The filter grammar text of the jobs page's filters (each value quoted)."""
    parts = []
    if experiment:
        parts.append(f"experiment = {quote(experiment)}")
    if state:
        parts.append(f"state = {quote(state)}")
    if task:
        parts.append(f"task = {quote(task)}")
    if tag:
        name, sep, value = tag.partition("=")
        if not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ValueError(f"tag filter {tag!r}: give NAME or NAME=VALUE")
        parts.append(f"tags.{name} = {quote(value)}" if sep else f"tags has {name}")
    if where:
        parts.append(f"({where})")
    return " and ".join(parts) or None


def jobs(source: Source, where: str | None, sort: str | None = None,
         limit: int = 5000) -> list[dict[str, Any]]:
    """The jobs matching `where`, each with `run` (its run's id, when indexed)."""
    store = source.fresh()
    rows = store.query_jobs(where, sort=sort, limit=limit)
    run_ids = _run_ids(source, [row.pk for row in rows])
    out = []
    for row in rows:
        data = {k: v for k, v in row.__dict__.items() if k != "pk"}
        data["run"] = run_ids.get(row.pk)
        out.append(data)
    return out


def _run_ids(source: Source, pks: list[int]) -> dict[int, str]:
    import sqlalchemy as sa

    from ..store.database import chunks
    from ..store.schema import runs

    def work(connection: Any) -> dict[int, str]:
        found: dict[int, str] = {}
        for chunk in chunks(pks):
            query = sa.select(runs.c.job_pk, runs.c.id).where(runs.c.job_pk.in_(chunk))
            found.update({pk: run_id for pk, run_id in connection.execute(query)})
        return found

    return source.read(work) if pks else {}


def job(source: Source, folder: str) -> dict[str, Any]:
    """One job: its index row, parameters, run id and folder files."""
    path = source.job_folder(folder)
    store = source.fresh()
    rows = store.query_jobs(f"folder = {quote(folder)}", limit=1)
    if not rows:
        raise NotFound(f"no job folder {folder!r} in the index")
    row = rows[0]
    data = {k: v for k, v in row.__dict__.items() if k != "pk"}
    data["params"] = store.job_params(row.pk)
    data["run"] = _run_ids(source, [row.pk]).get(row.pk)
    data["files"] = files_of(source, path)
    return data


def files_of(source: Source, folder: Path, limit: int = 2000) -> list[dict[str, Any]]:
    """The files of a job folder (its .etude/ book-keeping first-level files included), with
    sizes; links leading out of the workspace are left out."""
    found: list[dict[str, Any]] = []
    for base, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            path = Path(base, name)
            try:
                source.inside(path)
                size = path.stat().st_size
            except (OSError, PermissionError):
                continue
            found.append({"path": str(path.relative_to(folder)), "size": size})
            if len(found) >= limit:
                return found
    return found


def job_file(source: Source, folder: str, relative: str) -> Path:
    """A file of a job folder, checked (no `..`, no link out of the folder)."""
    return source.child(source.job_folder(folder), relative)


def read_text(path: Path) -> dict[str, Any]:
    """The start of a file as text, and whether it was cut or looks binary."""
    with open(path, "rb") as stream:
        data = stream.read(TEXT_LIMIT + 1)
    binary = b"\x00" in data[:8192]
    return {"text": "" if binary else data[:TEXT_LIMIT].decode("utf-8", "replace"),
            "truncated": len(data) > TEXT_LIMIT, "binary": binary,
            "size": path.stat().st_size}


def kill(source: Source, folder: str, timeout: float = 15.0) -> dict[str, Any]:
    """Stop a running job as `etude jobs kill` does (SIGTERM to its process group, or
    scancel); returns {"stopped", "message", "state"}."""
    from ..cli.kill import stop_job
    from ..workspace import JobDir, read_status

    path = source.job_folder(folder)
    out, err = io.StringIO(), io.StringIO()
    args = argparse.Namespace(job=str(path), timeout=timeout, force=False)
    with _kill_lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = stop_job(source.workspace, args)
    source.invalidate()
    state = read_status(JobDir(path, path.parent.name)).state
    message = (out.getvalue() + err.getvalue()).strip().removeprefix("etude: ")
    return {"stopped": code == 0, "message": message, "state": state}


def states(source: Source, where: str | None) -> dict[str, tuple[str, str | None]]:
    """folder -> (state, reason) of the jobs matching `where` (for the live stream)."""
    rows = source.fresh().query_jobs(where, limit=20000)
    return {row.folder: (row.state, row.reason) for row in rows}
