"""`etude runs list|show`: the tracked runs of a workspace (`Run.init()` runs and the runs of
jobs), read from the index after reconciling it with the run folders."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import TYPE_CHECKING, Any

from ..workspace import Workspace, WorkspaceError
from .index import open_index, with_index

if TYPE_CHECKING:
    from ..store.run_query import RunRow

STATE_STYLES = {"completed": "green", "failed": "red", "aborted": "yellow", "running": "cyan",
                "queued": "blue", "draft": "dim", "published": "magenta"}


def _filter(args: argparse.Namespace) -> Any:
    from ..store.run_query import RunFilter

    return RunFilter(where=args.where, project=args.project, tags=args.tag or [],
                     states=args.state or [], types=args.type or [], search=args.search,
                     include_archived=args.archived)


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import FilterError
    from ..store.run_query import count_runs, query_runs, run_values

    store = open_index(workspace)
    spec = _filter(args)
    ws = store.workspace_pk
    try:
        if args.count:
            counts = with_index(store, lambda s: _connected(s, lambda c: count_runs(c, ws, spec)))
            print(json.dumps(counts) if args.json else
                  "\n".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "0 runs")
            return 0
        rows, values = with_index(store, lambda s: _connected(s, lambda c: _rows_and_values(
            c, ws, spec, args, query_runs, run_values)))
    except (FilterError, ValueError) as exc:
        print(f"etude: bad filter: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([_row_json(workspace, row, values, args.columns)
                          for row in rows], indent=2, default=_json_default))
        return 0
    _print_runs(workspace, rows, values, args.columns)
    return 0


def _connected(store: Any, work: Any) -> Any:
    with store.engine.connect() as connection:
        return work(connection)


def _rows_and_values(connection: Any, ws: int, spec: Any, args: argparse.Namespace,
                     query: Any, values: Any) -> tuple[list[RunRow], Any]:
    rows = query(connection, ws, spec, args.sort, args.limit, args.offset)
    return rows, values(connection, [row.pk for row in rows])


def _json_default(value: Any) -> Any:
    return str(value)


def _safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _column(name: str, pk: int, values: Any) -> Any:
    """The value of a `--columns` entry: params.KEY (any section) or metrics.TITLE.SERIES."""
    params, metrics = values
    kind, _, rest = name.partition(".")
    if kind == "params":
        own = params.get(pk, {})
        if rest in own:
            return own[rest]
        return next((v for k, v in own.items() if k.split("/", 1)[-1] == rest), None)
    if kind == "metrics":
        parts = rest.split(".")
        title, series = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        aggregate = parts[2] if len(parts) > 2 else "last"
        return metrics.get(pk, {}).get(title, {}).get(series, {}).get(aggregate)
    return None


def _row_json(workspace: Workspace, row: RunRow, values: Any,
              columns: list[str] | None) -> dict[str, Any]:
    params, metrics = values
    data = row.to_json()
    data["path"] = str(workspace.path / row.folder)
    data["params"] = {k: _safe(v) for k, v in params.get(row.pk, {}).items()}
    data["metrics"] = metrics.get(row.pk, {})
    if columns:
        data["columns"] = {name: _safe(_column(name, row.pk, values)) for name in columns}
    return data


def _when(value: float | None) -> str:
    return "" if value is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(value))


def _print_runs(workspace: Workspace, rows: list[RunRow], values: Any,
                columns: list[str] | None) -> None:
    # rich is imported here, not at module level, so that `import etude` stays fast.
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"No runs match in {escape(str(workspace.path))}.", highlight=False)
        return
    columns = columns or []
    table = Table("ID", "PROJECT", "NAME", "TYPE", "STATE", "TAGS", "CREATED", *columns,
                  box=None, header_style="bold")
    for row in rows:
        state = f"[{STATE_STYLES.get(row.state, '')}]{row.state}[/]"
        if row.reason:
            state += f" ({escape(row.reason)})"
        extra = [escape(str(_column(name, row.pk, values))) for name in columns]
        table.add_row(row.id[:12], escape(row.project), escape(row.name), row.type, state,
                      escape(", ".join(row.tags)), _when(row.created), *extra)
    console.print(table, highlight=False)


def _show(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..tracking import Run, RunNotFoundError

    try:
        run = Run.get(args.run, workspace=workspace.path)
    except RunNotFoundError as exc:
        raise WorkspaceError(str(exc)) from None
    data = _run_json(run)
    if args.json:
        print(json.dumps(data, indent=2, default=_json_default))
        return 0
    for key in ("id", "project", "name", "type", "state", "reason", "message", "tags",
                "comment", "parent", "created", "started", "ended", "folder"):
        value = data.get(key)
        if value in (None, [], ""):
            continue
        if key in ("created", "started", "ended"):
            value = _when(value)
        print(f"{key + ':':10} {', '.join(value) if isinstance(value, list) else value}")
    _print_section("parameters", data["params"])
    _print_section("user properties", data["user_properties"])
    metrics = {f"{title}/{series}": summary.get("last")
               for title, by_series in data["metrics"].items()
               for series, summary in by_series.items()}
    _print_section("metrics (last)", metrics)
    _print_section("artifacts", {name: f"{a['type']}, {a['size']} bytes"
                                 for name, a in data["artifacts"].items()})
    if data.get("traceback"):
        print("traceback:\n" + data["traceback"])
    return 0


def _print_section(title: str, values: dict[str, Any]) -> None:
    if values:
        print(f"{title}:")
        for key, value in values.items():
            print(f"  {key} = {value!r}")


def _run_json(run: Any) -> dict[str, Any]:
    artifacts = {name: {"kind": a.kind, "type": a.type, "sha256": a.sha256, "size": a.size,
                        "preview": a.preview} for name, a in run.artifacts.items()}
    return {
        "id": run.id, "project": run.project, "name": run.name, "type": run.type,
        "state": run.state, "reason": run.reason, "message": run.message, "tags": run.tags,
        "comment": run.comment, "parent": run.parent, "created": run.created,
        "started": run.started, "ended": run.ended, "folder": str(run.folder),
        "params": {k: _safe(v) for k, v in run.params.items()},
        "user_properties": run.user_properties, "metrics": run.metrics,
        "artifacts": artifacts, "traceback": run.traceback,
        "environment": run.environment if run.job is None else {},
    }


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    """Add `runs list|show` to `groups`; `common` holds the shared options."""
    group = groups.add_parser("runs", help="list and show tracked runs")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", parents=[common], help="list runs (newest first)")
    listing.add_argument("--where", help='filter, e.g. "params.lr < 0.05 and metrics.loss.'
                                         'train < 0.5" (see docs/tracking.md)')
    listing.add_argument("--project", help="a project and its sub-projects")
    listing.add_argument("--state", action="append", help="keep runs in this state (repeat)")
    listing.add_argument("--type", action="append", help="keep runs of this type (repeat)")
    listing.add_argument("--tag", action="append",
                         help="keep runs with this tag; -TAG: without it (repeat)")
    listing.add_argument("--search", help="regular expression over name, id and comment")
    listing.add_argument("--archived", action="store_true", help="include archived runs")
    listing.add_argument("--sort", help="sort spec, e.g. -metrics.accuracy,name")
    listing.add_argument("--limit", type=int, help="at most this many runs")
    listing.add_argument("--offset", type=int, default=0, help="skip this many runs")
    listing.add_argument("--columns", type=lambda text: [c for c in text.split(",") if c],
                         help="extra columns: params.KEY or metrics.TITLE.SERIES[.AGG]")
    listing.add_argument("--count", action="store_true", help="count runs per state")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", parents=[common], help="show one run")
    show.add_argument("run", help="run id (a unique prefix works)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)
