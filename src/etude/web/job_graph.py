"""The dependency graph of an experiment's jobs: a job depends on the submitted tasks in its
configuration, which its `.etude/params.json` lists by identifier under `dependencies` (the
index does not hold them). A dependency done in another experiment is a node too, marked
`outside`.

Blocking code (database, files), called from worker threads.
"""

from __future__ import annotations

import logging
from typing import Any

from ..workspace import read_json
from ..workspace.layout import ETUDE_DIR
from .job_data import job_where, jobs, quote
from .source import Source

logger = logging.getLogger("etude.web")
#: At most this many jobs are drawn (each costs one small file read).
MAX_JOBS = 2000


def graph(source: Source, experiment: str) -> dict[str, Any]:
    """{"nodes": [{"folder", "id", "task", "state", "reason", "run", "outside"}], "edges":
    [{"source": folder depended on, "target": folder depending on it}], "truncated"}."""
    found = jobs(source, job_where(experiment, None, None, None, None), limit=MAX_JOBS + 1)
    truncated = len(found) > MAX_JOBS
    found = found[:MAX_JOBS]
    by_id = {job["id"]: job for job in found if job["kind"] == "task"}
    wanted: dict[str, list[str]] = {}
    for job in found:
        for dependency in _dependencies(source, job["folder"]):
            wanted.setdefault(dependency, []).append(job["folder"])
    outside = [key for key in wanted if key not in by_id]
    for job in _jobs_by_id(source, outside):
        job["outside"] = True
        by_id[job["id"]] = job
    nodes = [_node(job) for job in found] + [
        _node(job) for key, job in by_id.items() if job.get("outside")]
    edges = [{"source": by_id[key]["folder"], "target": folder}
             for key, folders in wanted.items() if key in by_id for folder in folders]
    return {"nodes": nodes, "edges": edges, "truncated": truncated}


def _node(job: dict[str, Any]) -> dict[str, Any]:
    keys = ("folder", "id", "task", "state", "reason", "run")
    return {**{key: job.get(key) for key in keys}, "outside": bool(job.get("outside"))}


def _dependencies(source: Source, folder: str) -> list[str]:
    """The identifiers of the tasks the job's configuration holds (none for an infra job or
    a folder whose params.json cannot be read, which is logged)."""
    path = source.root / folder / ETUDE_DIR / "params.json"
    try:
        params = read_json(path)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        logger.warning("%s: dependencies not read: %s", path, error)
        return []
    found = params.get("dependencies") if isinstance(params, dict) else None
    return [key for key in found or [] if isinstance(key, str)]


def _jobs_by_id(source: Source, keys: list[str]) -> list[dict[str, Any]]:
    """The task jobs of the workspace whose identifiers are `keys`, with their run ids."""
    if not keys:
        return []
    quoted = ", ".join(quote(key) for key in keys)
    return jobs(source, f'kind = "task" and id in ({quoted})', limit=len(keys))



def depends_on(source: Source, folder: str) -> list[dict[str, Any]]:
    """The jobs the job at `folder` depends on, as graph nodes (for the job's page)."""
    return [_node(job) for job in _jobs_by_id(source, _dependencies(source, folder))]
