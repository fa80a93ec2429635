"""What the web UI reads: the workspace's index (reconciled with the folders, at most once a
second however many requests come) and the files of runs and jobs.

Everything here is blocking (database, files): the app calls it from worker threads, never
from the event loop. Nothing read from the workspace is unpickled or imported: a shared
workspace is writable by others, so its files are data, never code.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..workspace import Workspace

if TYPE_CHECKING:
    from ..store import Store
    from ..store.run_query import RunRow
    from ..tracking import Run

T = TypeVar("T")

#: Reconcile the index with the folders at most this often (seconds).
REFRESH_INTERVAL = 1.0
_RUN_REFERENCE = re.compile(r"[A-Za-z0-9_.=,+-]{1,255}")


class NotFound(LookupError):
    """What the request names does not exist; the message says what and where to look."""


class Forbidden(PermissionError):
    """The request names a file outside what the UI serves (the workspace)."""


class Conflict(RuntimeError):
    """The change asked for is not possible in the present state; the message says why."""


class Source:
    """The index and the folders of one workspace, as the UI reads them."""

    def __init__(self, workspace: Workspace, refresh_interval: float = REFRESH_INTERVAL) -> None:
        from ..cli.index import open_index

        self.workspace = workspace
        self.root = workspace.path.absolute()
        self.store: Store = open_index(workspace, refresh=False)
        self.refresh_interval = refresh_interval
        self._refresh_lock = threading.Lock()
        self._refreshed = float("-inf")
        self._series = _SeriesCache()

    def close(self) -> None:
        self.store.close()

    # -- the index ----------------------------------------------------------------------------
    def fresh(self) -> Store:
        """The store, reconciled with the folders unless that was done less than
        `refresh_interval` seconds ago (a second request waits for a refresh in progress)."""
        from ..cli.index import with_index
        from ..launchers.slurm_queue import recorded_job_state
        from ..store import refresh

        with self._refresh_lock:
            if time.monotonic() - self._refreshed >= self.refresh_interval:
                with_index(self.store, lambda s: refresh(s, recorded_job_state))
                self._refreshed = time.monotonic()
        return self.store

    def invalidate(self) -> None:
        """Make the next read reconcile the index (after an edit made here)."""
        with self._refresh_lock:
            self._refreshed = float("-inf")

    def read(self, work: Callable[[Any], T]) -> T:
        """`work(connection)` on the reconciled index (a damaged SQLite index is rebuilt)."""
        from ..cli.index import with_index

        def connected(store: Store) -> T:
            with store.engine.connect() as connection:
                return work(connection)

        return with_index(self.fresh(), connected)

    @property
    def workspace_pk(self) -> int:
        return self.store.workspace_pk

    # -- runs ---------------------------------------------------------------------------------
    def run_row(self, reference: str) -> RunRow:
        """The index row of the run whose id is `reference` or starts with it (archived runs
        too). Raises NotFound, or ValueError when several runs match."""
        import sqlalchemy as sa

        from ..store.run_query import ROW_COLUMNS, RunRow
        from ..store.schema import runs

        if not _RUN_REFERENCE.fullmatch(reference):
            raise NotFound(f"{reference!r} is not a run id")
        columns = [runs.c[name] for name in ROW_COLUMNS]
        ws = self.workspace_pk

        def find(connection: Any) -> list[Any]:
            exact = connection.execute(sa.select(*columns).where(
                runs.c.workspace_pk == ws, runs.c.id == reference)).all()
            if exact:
                return list(exact)
            return list(connection.execute(sa.select(*columns).where(
                runs.c.workspace_pk == ws, runs.c.id.startswith(reference, autoescape=True)
            ).limit(3)).all())

        found = self.read(find)
        if not found:
            raise NotFound(f"no run id starts with {reference!r} in {self.root}")
        if len(found) > 1:
            raise ValueError(f"{reference!r} matches several runs; give more characters")
        return RunRow(found[0])

    def run(self, reference: str) -> Run:
        """The run `reference` (an id or a unique prefix), reading its folder lazily."""
        from ..tracking import Run
        from ..tracking.query import run_from_row

        return run_from_row(Run, self.root, self.run_row(reference))

    def series(self, run: Run, title: str) -> dict[str, tuple[Any, Any, Any]]:
        """`{series: (iterations, values, times)}` of one title of a run, cached while the
        scalars file is unchanged (zooming reads it once)."""
        return self._series.get(run._folder.scalars, title)

    # -- files ----------------------------------------------------------------------------------
    def inside(self, path: Path) -> Path:
        """`path` resolved (links followed), if it lies inside the workspace; else Forbidden."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root.resolve()):
            raise Forbidden(f"{path} is outside the workspace")
        return resolved

    def child(self, base: Path, relative: str) -> Path:
        """The file `relative` under the folder `base` (no absolute path, no `..`, no link
        leading out of `base` or of the workspace). Raises Forbidden or NotFound."""
        parts = relative.replace("\\", "/").split("/")
        if relative.startswith("/") or any(part in ("..", "") for part in parts) \
                or "\x00" in relative:
            raise Forbidden(f"{relative!r}: give a path relative to the folder, without '..'")
        target = self.inside(base / relative)
        if not target.is_relative_to(self.inside(base)):
            raise Forbidden(f"{relative!r} leads outside its folder")
        if not target.exists():
            raise NotFound(f"no file {relative!r} in {base}")
        return target

    def job_folder(self, folder: str) -> Path:
        """The folder of the job the index holds at `folder` (relative to the workspace);
        NotFound for any other folder, so only job folders are browsed."""
        import sqlalchemy as sa

        from ..store.schema import jobs

        ws = self.workspace_pk
        found = self.read(lambda c: c.execute(sa.select(jobs.c.pk).where(
            jobs.c.workspace_pk == ws, jobs.c.folder == folder)).first())
        if found is None:
            raise NotFound(f"no job folder {folder!r} in the index of {self.root}")
        return self.inside(self.root / folder)


class _SeriesCache:
    """The last few titles read, keyed by the scalars file's (size, mtime)."""

    def __init__(self, size: int = 8) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, path: Path, title: str) -> dict[str, tuple[Any, Any, Any]]:
        from ..tracking.points import read_points

        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return {}
        key, version = (str(path), title), (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(key)
                return dict(entry[1])
        value = read_points(path, title).get(title, {})
        with self._lock:
            self._entries[key] = (version, value)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return dict(value)
