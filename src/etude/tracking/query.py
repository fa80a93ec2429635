"""Finding recorded runs: `Run.get`, `Run.query` and `runs_dataframe`, through the index.

Each call first reconciles the index with the run folders (`store.refresh`), so runs
recorded a moment ago by other processes, here or on a cluster node, are found. The store is
opened once per workspace and process.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workspace.run_folder import RunFolder, runs_root
from .errors import RunNotFoundError
from .where import resolve_workspace

if TYPE_CHECKING:
    from ..store import Store
    from ..store.run_query import RunRow
    from .run import Run

_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def open_index(root: Path) -> Store:
    """The index of the workspace `root`, opened once per process, reconciled."""
    from ..store import open_store, refresh

    with _stores_lock:
        store = _stores.get(root)
        if store is None:
            store = _stores[root] = open_store(root)
    refresh(store)
    return store


def _as_list(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def run_from_row(cls: type[Run], root: Path, row: RunRow) -> Run:
    text = f"{root}/{row.folder}"
    folder = (RunFolder(text, row.id) if row.kind == "run"
              else RunFolder(f"{text}/.etude/run", row.id))
    run = cls(folder, root)
    run._row = row
    return run


def query_runs(cls: type[Run], *, project: str | None, name: str | None,
               tags: list[str] | None, state: list[str] | str | None,
               type: list[str] | str | None, search: str | None, where: str | None,
               order_by: str | None, limit: int | None, offset: int, include_archived: bool,
               workspace: str | os.PathLike[str] | None) -> list[Run]:
    from ..store.database import paused_gc
    from ..store.run_query import RunFilter
    from ..store.run_query import query_runs as query

    root = resolve_workspace(workspace)
    _write_pending()
    store = open_index(root)
    spec = RunFilter(where=where, project=project, name=name, tags=_as_list(tags),
                     states=_as_list(state), types=_as_list(type), search=search,
                     include_archived=include_archived)
    with store.engine.connect() as connection:
        rows = query(connection, store.workspace_pk, spec, order_by, limit, offset)
    with paused_gc():
        return [run_from_row(cls, root, row) for row in rows]


def get_run(cls: type[Run], run_id: str | None, *, project: str | None, name: str | None,
            workspace: str | os.PathLike[str] | None) -> Run:
    root = resolve_workspace(workspace)
    _write_pending()
    if run_id is not None:
        folder = RunFolder(runs_root(root) / run_id)
        if len(run_id) == 32 and folder.exists():
            return cls(folder, root)  # no index needed
        matches = query_runs(cls, project=None, name=None, tags=None, state=None, type=None,
                             search=None, where=f'id ~ "^{_escape(run_id)}"', order_by=None,
                             limit=3, offset=0, include_archived=True, workspace=root)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise RunNotFoundError(f"no run id starts with {run_id!r} in {root}. List runs "
                                   "with `etude runs list` (check the workspace).")
        raise RunNotFoundError(f"{run_id!r} matches several runs "
                               f"({', '.join(r.id[:12] for r in matches)}); give more "
                               "characters.")
    if project is None or name is None:
        raise ValueError("Run.get: give a run id, or both project= and name=.")
    found = query_runs(cls, project=None, name=name, tags=None, state=None, type=None,
                       search=None, where=f'project = "{_quote(project)}"',
                       order_by="-modified", limit=1, offset=0, include_archived=True,
                       workspace=root)
    if not found:
        raise RunNotFoundError(f"no run named {name!r} in project {project!r} of {root}.")
    return found[0]


def _write_pending() -> None:
    """The run this process records is found by its own queries from the first instant (its
    first files wait for the writer thread otherwise)."""
    from .run import current_live

    run = current_live()
    if run is not None and run._live is not None:
        run._live.write_pending()


def _escape(text: str) -> str:
    import re

    return _quote(re.escape(text))


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def runs_dataframe(*, workspace: str | os.PathLike[str] | None = None, **filters: Any) -> Any:
    """The runs of `Run.query(**filters)` as a pandas DataFrame: one row per run with its
    id, project, name, type, state, tags, times, every parameter (`Section/key` columns) and
    the last value of every metric (`metrics/TITLE/SERIES` columns)."""
    import pandas as pd  # type: ignore[import-untyped]

    from ..store.run_query import RunFilter, run_values
    from ..store.run_query import query_runs as query

    root = resolve_workspace(workspace)
    _write_pending()
    store = open_index(root)
    spec = RunFilter(where=filters.pop("where", None), project=filters.pop("project", None),
                     name=filters.pop("name", None), tags=_as_list(filters.pop("tags", None)),
                     states=_as_list(filters.pop("state", None)),
                     types=_as_list(filters.pop("type", None)),
                     search=filters.pop("search", None),
                     include_archived=filters.pop("include_archived", False))
    order_by, limit = filters.pop("order_by", None), filters.pop("limit", None)
    offset = filters.pop("offset", 0)
    if filters:
        raise TypeError(f"runs_dataframe: unknown filter(s) {', '.join(sorted(filters))}")
    with store.engine.connect() as connection:
        rows = query(connection, store.workspace_pk, spec, order_by, limit, offset)
        params, metrics = run_values(connection, [row.pk for row in rows])
    records = []
    for row in rows:
        record = {key: value for key, value in row.to_json().items()
                  if key not in ("folder", "message")}
        record.update(params[row.pk])
        for title, by_series in metrics[row.pk].items():
            for series, summary in by_series.items():
                record[f"metrics/{title}/{series}"] = summary["last"]
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    return frame.set_index("id") if len(frame) else frame


def close_indexes() -> None:
    """Close the indexes this process opened (their connections go back)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()
