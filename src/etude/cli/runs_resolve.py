"""Naming a run on the command line: by its id, by a prefix of its id that no other run
shares, or by `PROJECT/NAME` (the last modified run of that project and name, as
`Run.get(project=, name=)` finds it).

`resolve_run` is the one place that turns what the user typed into a `Run`, so that every
`etude runs` command accepts the same names and fails with the same messages: what matched
(or nearly), and how to name the run instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..workspace import Workspace, WorkspaceError
from .index import open_index, with_index

if TYPE_CHECKING:
    from ..store import Store
    from ..store.run_query import RunFilter, RunRow
    from ..tracking import Run

#: How many candidates an error message lists.
SHOWN = 10
_HEX = re.compile(r"[0-9a-f]+")


class RunNameError(WorkspaceError):
    """The text names no run, or several; the message lists the candidates."""


def resolve_run(workspace: Workspace, text: str, store: Store | None = None) -> Run:
    """The run named by `text`: an id, a unique id prefix, or `PROJECT/NAME`.

    `store` is the workspace's index when the caller has opened it (else it is opened and
    reconciled here). Archived runs are found too. Raises `RunNameError` (exit status 2 on
    the command line) when no run or several runs match, listing them.
    """
    return run_of(workspace, resolve_row(workspace, text, store))


def resolve_row(workspace: Workspace, text: str, store: Store | None = None) -> RunRow:
    """The index row of the run `resolve_run` names: its state, reason, times and host as
    the index holds them (for the run of a job, the job's)."""
    name = text.strip()
    if not name:
        raise RunNameError("empty run name; give a run id (or a unique prefix of it), or "
                           "PROJECT/NAME.")
    store = store if store is not None else open_index(workspace)
    if "/" in name:
        return _by_project_and_name(store, workspace, name)
    return _by_id_prefix(store, workspace, name)


def run_of(workspace: Workspace, row: RunRow) -> Run:
    """The `Run` of an index row (it reads the run's folder for what the row lacks)."""
    from ..tracking import Run
    from ..tracking.query import run_from_row

    return run_from_row(Run, workspace.path, row)


def resolve_runs(workspace: Workspace, texts: list[str], store: Store | None = None
                 ) -> list[Run]:
    """`resolve_run` for each text, in order; the same run named twice is an error."""
    return [run_of(workspace, row) for row in resolve_rows(workspace, texts, store)]


def resolve_rows(workspace: Workspace, texts: list[str], store: Store | None = None
                 ) -> list[RunRow]:
    """`resolve_row` for each text, in order; the same run named twice is an error."""
    store = store if store is not None else open_index(workspace)
    found = [resolve_row(workspace, text, store) for text in texts]
    seen: dict[str, str] = {}
    for text, row in zip(texts, found, strict=True):
        if row.id in seen:
            raise RunNameError(f"{seen[row.id]!r} and {text!r} name the same run "
                               f"({row.id[:12]} {row.project}/{row.name}); name each run once.")
        seen[row.id] = text
    return found


def _query(store: Store, spec: RunFilter, sort: str | None, limit: int) -> list[RunRow]:
    from ..store.run_query import query_runs

    def work(s: Store) -> list[RunRow]:
        with s.engine.connect() as connection:
            return query_runs(connection, s.workspace_pk, spec, sort, limit)

    return with_index(store, work)


def _quoted(text: str) -> str:
    """`text` as a string literal of the filter grammar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _by_id_prefix(store: Store, workspace: Workspace, text: str) -> RunRow:
    from ..store.run_query import RunFilter

    prefix = text.lower()
    rows: list[RunRow] = []
    if _HEX.fullmatch(prefix):  # ids are hex digits: anything else cannot match one
        rows = _query(store, RunFilter(where=f'id ~ "^{prefix}"', include_archived=True),
                      "id", SHOWN + 1)
    exact = [row for row in rows if row.id == prefix]
    if exact:
        return exact[0]
    if len(rows) == 1:
        return rows[0]
    if rows:
        more = " and more" if len(rows) > SHOWN else ""
        raise RunNameError(f"{text!r} is the start of several run ids in {workspace.path}:\n"
                           f"{_listing(rows[:SHOWN])}{more}\n"
                           "Give more characters of the id, or name the run as PROJECT/NAME.")
    named = _query(store, RunFilter(name=text, include_archived=True), "-modified", SHOWN)
    if named:
        raise RunNameError(f"no run id starts with {text!r} in {workspace.path}, but runs are "
                           f"named so; name one as PROJECT/NAME:\n{_listing(named)}")
    raise RunNameError(f"no run id starts with {text!r} in {workspace.path}; list the runs "
                       "with `etude runs list` (and check --workspace).")


def _by_project_and_name(store: Store, workspace: Workspace, text: str) -> RunRow:
    from ..store.run_query import RunFilter

    project, _, name = text.rpartition("/")
    project = project.rstrip("/")
    if project and name:
        rows = _query(store, RunFilter(where=f"project = {_quoted(project)}", name=name,
                                       include_archived=True), "-modified", 1)
        if rows:
            return rows[0]
    if not name:
        raise RunNameError(f"{text!r} ends with '/': name a run as PROJECT/NAME "
                           "(e.g. vision/mnist/baseline), or by its id.")
    elsewhere = _query(store, RunFilter(name=name, include_archived=True), "-modified", SHOWN)
    if elsewhere:
        raise RunNameError(f"no run named {name!r} in project {project!r} of "
                           f"{workspace.path}; runs of that name:\n{_listing(elsewhere)}")
    in_project = _query(store, RunFilter(project=project or None, include_archived=True),
                        "-modified", 50)
    names = sorted({row.name for row in in_project})
    if names:
        shown = ", ".join(names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")
        raise RunNameError(f"no run named {name!r} in project {project!r} of "
                           f"{workspace.path}; its runs are named: {shown}.")
    raise RunNameError(f"no project {project!r} in {workspace.path}; see the projects with "
                       "`etude projects list`.")


def _listing(rows: list[RunRow]) -> str:
    return "\n".join(f"  {row.id[:12]}  {row.project}/{row.name}  ({row.state})"
                     for row in rows)
