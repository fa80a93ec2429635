"""Which parameters two jobs differ in, and which done job of a task is closest to a new
configuration (for dry runs that explain, and `etude jobs diff`).

Parameters are compared flattened (`model.hidden`), as the index holds them. The done jobs of
a task come from the index when it exists and is current, else from the task's folders: a
dry run writes nothing, so it never creates or migrates an index.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..workspace import CorruptFileError, Workspace, check_done, read_json
from .records import Value, flatten_config

logger = logging.getLogger("etude.store")


class Missing:
    """The value of a parameter that one side does not have."""

    def __repr__(self) -> str:
        return "(absent)"


MISSING: Any = Missing()
Change = tuple[str, Any, Any]  # path, first value, second value


def plain(values: dict[str, Value]) -> dict[str, Any]:
    """Flattened parameters as plain values (what `Store.job_params` returns)."""
    out: dict[str, Any] = {}
    for path, (kind, num, text) in values.items():
        if kind == "bool":
            out[path] = bool(num)
        elif kind == "int":
            out[path] = int(text) if text is not None else None
        elif kind == "float":
            out[path] = float(text) if text is not None else num
        elif kind in ("list", "json") and text is not None:
            out[path] = json.loads(text)
        else:
            out[path] = text
    return out


def parameter_changes(first: dict[str, Any], second: dict[str, Any]) -> list[Change]:
    """(path, first value, second value) for every path whose values differ, sorted by path;
    `MISSING` stands for a path one side lacks. `1` and `1.0` differ (so do identifiers)."""
    changes = []
    for path in sorted(set(first) | set(second)):
        a, b = first.get(path, MISSING), second.get(path, MISSING)
        if a != b or type(a) is not type(b):
            changes.append((path, a, b))
    return changes


def shown(value: Any) -> str:
    return repr(value) if value is MISSING else json.dumps(value)


def changes_text(changes: list[Change], prefix: str = "", most: int = 5) -> str:
    """`lr: 0.01 -> 0.02, model.hidden: 64 -> 128` (at most `most`, then how many more)."""
    parts = [f"{prefix}{path}: {shown(a)} -> {shown(b)}" for path, a, b in changes[:most]]
    if len(changes) > most:
        parts.append(f"and {len(changes) - most} more")
    return ", ".join(parts)


def closest(
    candidates: Iterator[tuple[str, dict[str, Any]]], params: dict[str, Any]
) -> tuple[str, list[Change]] | None:
    """The candidate (name, parameters) with the fewest changes to reach `params`."""
    best: tuple[str, list[Change]] | None = None
    for name, values in candidates:
        changes = parameter_changes(values, params)
        if changes and (best is None or len(changes) < len(best[1])):
            best = (name, changes)
    return best


def done_jobs_of_task(
    workspace: Workspace, type_name: str, store_url: str | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`task/short-id`, parameters) of every done job of the task `type_name`."""
    from_index = _from_index(workspace, type_name, store_url)
    if from_index is not None:
        yield from from_index
        return
    task_dir = workspace.job_dir(type_name, "x").path.parent
    try:
        names = sorted(os.listdir(task_dir))
    except OSError:
        return
    for name in names:
        job = workspace.job_dir(type_name, name)
        if not check_done(job, repair=False):
            continue
        try:
            config = read_json(job.params)["config"]
            yield job.label, plain(flatten_config(config))
        except (FileNotFoundError, CorruptFileError, KeyError, IndexError, TypeError,
                ValueError) as exc:
            logger.debug("etude: %s: parameters not compared (%s)", job.params, exc)


def _from_index(
    workspace: Workspace, type_name: str, store_url: str | None
) -> list[tuple[str, dict[str, Any]]] | None:
    """From the index, if there is a current one (None otherwise: read the folders)."""
    from .location import locate

    location = locate(workspace.path, store_url)
    if location.path is not None and not location.path.exists():
        return None
    # The store (SQLAlchemy) only now: most dry runs of a new workspace never get here.
    import sqlalchemy as sa

    from .database import create_engine, read_revision
    from .schema import HEAD, job_params, jobs, workspaces

    engine = create_engine(location)
    try:
        with engine.connect() as connection:
            if read_revision(connection) != HEAD:
                return None
            query = (
                sa.select(jobs.c.folder, job_params.c.path, job_params.c.kind,
                          job_params.c.num, job_params.c.text)
                .join(job_params, job_params.c.job_pk == jobs.c.pk)
                .join(workspaces, workspaces.c.pk == jobs.c.workspace_pk)
                .where(workspaces.c.path == str(workspace.path), jobs.c.task == type_name,
                       jobs.c.state == "done")
            )
            found: dict[str, dict[str, Value]] = {}
            for folder, path, kind, num, text in connection.execute(query):
                found.setdefault(folder, {})[path] = (kind, num, text)
    except sa.exc.SQLAlchemyError as exc:
        logger.info("etude: the index cannot be read (%s); reading the job folders", exc)
        return None
    finally:
        engine.dispose()
    return [(_label(folder), plain(values)) for folder, values in sorted(found.items())]


def _label(folder: str) -> str:
    """`jobs/TASK/ID` -> `TASK/ID[:12]`, as `JobDir.label` writes it."""
    parent, _, job_id = folder.rpartition("/")
    return f"{parent.rpartition('/')[2]}/{job_id[:12]}"
