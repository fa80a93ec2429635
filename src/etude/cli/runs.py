"""`etude runs ...`: the tracked runs of a workspace (`Run.init()` runs and the runs of jobs),
read from the index after reconciling it with the run folders.

`list` is here; `show`, `compare`, `delete` and `export` live in `runs_*.py`, and every
command names runs through `runs_resolve.resolve_run` (id, unique id prefix, PROJECT/NAME).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ..workspace import Workspace
from ..workspace.run_folder import RUN_STATES
from . import runs_actions, runs_compare, runs_delete, runs_export, runs_show
from .index import open_index, with_index
from .runs_format import console, duration, json_default, safe, state_markup, text, when

if TYPE_CHECKING:
    from ..store.run_query import RunRow

#: Fields of a run row that `--columns` shows as they are (besides params., metrics., user.,
#: tags and tags.NAME).
ROW_COLUMNS = ("id", "kind", "project", "name", "type", "state", "reason", "message",
               "comment", "parent", "host", "created", "started", "ended", "modified",
               "duration", "archived", "outputs", "folder")
TIME_COLUMNS = frozenset({"created", "started", "ended", "modified"})
COLUMN_HELP = ("params.KEY, metrics.NAME, metrics.TITLE.SERIES[.last|.min|.max|.count], "
               f"user.KEY, tags, tags.NAME, or one of {', '.join(ROW_COLUMNS)}")
#: A part of a column name: backtick-quoted (may hold dots) or plain.
_PART = re.compile(r"`([^`]*)`|([^.`]+)")


# -- argument types ----------------------------------------------------------------------------
def parse_columns(text: str) -> list[str]:
    """`--columns params.lr,metrics.loss.train,user.x,tags,duration`, checked."""
    columns = [part.strip() for part in text.split(",") if part.strip()]
    for column in columns:
        head, dot, rest = column.partition(".")
        if column in ROW_COLUMNS or column == "tags":
            continue
        if head in ("params", "user", "tags") and dot and rest:
            continue
        if head == "metrics" and dot and 1 <= len(_parts(rest)) <= 3:
            continue
        raise argparse.ArgumentTypeError(f"unknown column {column!r}; use {COLUMN_HELP}")
    return columns


def parse_state(text: str) -> str:
    if text not in RUN_STATES:
        raise argparse.ArgumentTypeError(f"unknown run state {text!r}; choose from "
                                         f"{', '.join(RUN_STATES)}")
    return text


def parse_type(text: str) -> str:
    from ..tracking.run import RUN_TYPES  # only when --type is given: the module is heavier

    if text not in RUN_TYPES:
        raise argparse.ArgumentTypeError(f"unknown run type {text!r}; choose from "
                                          f"{', '.join(RUN_TYPES)}")
    return text


def positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return number


def _parts(path: str) -> list[str]:
    """`loss.train` -> [loss, train]; `` `val/loss`.train `` -> [val/loss, train]."""
    return [quoted or plain for quoted, plain in _PART.findall(path)]


# -- runs list ---------------------------------------------------------------------------------
def run_filter(args: argparse.Namespace) -> Any:
    """The `RunFilter` of the filter options shared by `list` and `export`."""
    from ..store.run_query import RunFilter

    return RunFilter(where=args.where, project=args.project, tags=args.tag or [],
                     states=args.state or [], types=args.type or [], search=args.search,
                     include_archived=args.archived)


Values = tuple[dict[int, dict[str, Any]], dict[int, dict[str, dict[str, Any]]],
               dict[int, dict[str, Any]]]


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import FilterError
    from ..store.run_query import count_runs

    store = open_index(workspace)
    spec = run_filter(args)
    ws = store.workspace_pk
    try:
        if args.count:
            counts = with_index(store, lambda s: _connected(s, lambda c: count_runs(c, ws, spec)))
            print(json.dumps(counts) if args.json else
                  "\n".join(f"{state}: {n}" for state, n in sorted(counts.items())) or "0 runs")
            return 0
        rows, values = with_index(store, lambda s: _connected(
            s, lambda c: _rows_and_values(c, ws, spec, args)))
    except (FilterError, ValueError) as exc:
        print(f"etude: bad filter: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([_row_json(workspace, row, values, args.columns) for row in rows],
                         indent=2, default=json_default))
        return 0
    _print_runs(workspace, rows, values, args.columns)
    return 0


def _connected(store: Any, work: Any) -> Any:
    with store.engine.connect() as connection:
        return work(connection)


def _rows_and_values(connection: Any, ws: int, spec: Any, args: argparse.Namespace
                     ) -> tuple[list[RunRow], Values]:
    from ..store.run_query import query_runs, run_values

    rows = query_runs(connection, ws, spec, args.sort, args.limit, args.offset)
    pks = [row.pk for row in rows]
    params, metrics = run_values(connection, pks)
    wants_user = any(c.startswith("user.") for c in args.columns or [])
    return rows, (params, metrics, _properties(connection, pks) if wants_user else {})


def _properties(connection: Any, pks: Sequence[int]) -> dict[int, dict[str, Any]]:
    """User properties of the runs `pks` (asked only when a `user.KEY` column is shown)."""
    import sqlalchemy as sa

    from ..store.database import chunks
    from ..store.rows import plain_value
    from ..store.schema import run_properties

    found: dict[int, dict[str, Any]] = {pk: {} for pk in pks}
    for chunk in chunks(list(pks)):
        query = sa.select(run_properties).where(run_properties.c.run_pk.in_(chunk))
        for row in connection.execute(query).mappings():
            found[row["run_pk"]][row["key"]] = plain_value(row)
    return found


def column_value(name: str, row: RunRow, values: Values) -> Any:
    """The value of a `--columns` entry for `row` (None when the run has none)."""
    params, metrics, properties = values
    kind, _, rest = name.partition(".")
    if kind == "params" and rest:
        own = params.get(row.pk, {})
        if rest in own:
            return own[rest]
        return next((v for k, v in own.items() if k.split("/", 1)[-1] == rest), None)
    if kind == "metrics" and rest:
        parts = _parts(rest)
        title, series = parts[0], parts[1] if len(parts) > 1 else parts[0]
        aggregate = parts[2] if len(parts) > 2 else "last"
        return metrics.get(row.pk, {}).get(title, {}).get(series, {}).get(aggregate)
    if kind == "user" and rest:
        return properties.get(row.pk, {}).get(rest)
    if kind == "tags":
        return _tag_column(row.tags, rest)
    if name == "duration":
        return row.ended - row.started if row.ended is not None and row.started is not None \
            else None
    return getattr(row, name, None)


def _tag_column(tags: list[str], name: str) -> Any:
    if not name:
        return tags
    for tag in tags:
        key, sep, value = tag.partition("=")
        if key == name:
            return value if sep else True
    return None


def _row_json(workspace: Workspace, row: RunRow, values: Values,
              columns: list[str] | None) -> dict[str, Any]:
    params, metrics, _ = values
    data = row.to_json()
    data["path"] = str(workspace.path / row.folder)
    data["params"] = {k: safe(v) for k, v in params.get(row.pk, {}).items()}
    data["metrics"] = metrics.get(row.pk, {})
    if columns:
        data["columns"] = {name: safe(column_value(name, row, values)) for name in columns}
    return data


def _cell(name: str, value: Any) -> str:
    if name in TIME_COLUMNS:
        return when(value)
    if name == "duration":
        return duration(value)
    if name == "tags" and isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return text(value)


def _print_runs(workspace: Workspace, rows: list[RunRow], values: Values,
                columns: list[str] | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    if not rows:
        out.print(f"No runs match in {escape(str(workspace.path))}.")
        return
    columns = columns or []
    table = Table("ID", "PROJECT", "NAME", "TYPE", "STATE", "TAGS", "CREATED",
                  *(escape(c) for c in columns), box=None, header_style="bold")
    for row in rows:
        extra = [escape(_cell(name, column_value(name, row, values))) for name in columns]
        table.add_row(row.id[:12], escape(row.project), escape(row.name), row.type,
                      state_markup(row.state, row.reason), escape(", ".join(row.tags)),
                      when(row.created), *extra)
    out.print(table)


# -- the parser --------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Reads `--tag -debug` as `--tag=-debug`: argparse would take `-debug` for an option,
    and excluded tags are written that way."""

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        joined: list[str] = []
        for arg in sys.argv[1:] if args is None else args:
            if joined and joined[-1] == "--tag" and arg.startswith("-") and len(arg) > 1:
                joined[-1] = f"--tag={arg}"
            else:
                joined.append(arg)
        return super().parse_known_args(joined, namespace)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    """The filter, sort and page options of `list` and `export`."""
    parser.add_argument("--where", help='filter, e.g. "params.lr < 0.05 and metrics.loss.'
                                        'train < 0.5" (see docs/tracking.md)')
    parser.add_argument("--project", help="a project and its sub-projects")
    parser.add_argument("--state", action="append", type=parse_state,
                        help="keep runs in this state (repeat)")
    parser.add_argument("--type", action="append", type=parse_type,
                        help="keep runs of this type (repeat)")
    parser.add_argument("--tag", action="append",
                        help="keep runs with this tag; -TAG: without it (repeat)")
    parser.add_argument("--search", help="regular expression over name, id and comment")
    parser.add_argument("--archived", action="store_true", help="include archived runs")
    parser.add_argument("--sort", help="sort spec, e.g. -metrics.accuracy,name")
    parser.add_argument("--limit", type=positive, help="at most this many runs")
    parser.add_argument("--offset", type=positive, default=0, help="skip this many runs")


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    """Add `runs list|show|compare|delete|export` to `groups`; `common` holds the shared
    options."""
    group = groups.add_parser("runs", help="list, show, compare, export and delete tracked runs")
    commands = cast("argparse._SubParsersAction[argparse.ArgumentParser]",
                    group.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                         parser_class=_Parser))
    listing = commands.add_parser("list", parents=[common], help="list runs (newest first)")
    _add_filters(listing)
    listing.add_argument("--columns", type=parse_columns, help=f"extra columns: {COLUMN_HELP}")
    listing.add_argument("--count", action="store_true", help="count runs per state")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", parents=[common], help="everything a run captured")
    show.add_argument("run", help="run id, unique id prefix, or PROJECT/NAME")
    show.add_argument("--console", action="store_true", help="the whole console, not its tail")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=runs_show.show)
    compare = commands.add_parser("compare", parents=[common],
                                  help="parameters and last metrics of runs side by side")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="two or more runs: id, unique id prefix, or PROJECT/NAME")
    compare.add_argument("--all", action="store_true",
                         help="show equal parameters and monitor series too")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(handler=_compare)
    delete = commands.add_parser("delete", parents=[common],
                                 help="delete runs (their folders and index rows)")
    delete.add_argument("runs", nargs="+", metavar="RUN",
                        help="id, unique id prefix, or PROJECT/NAME")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask")
    delete.add_argument("--force", action="store_true", help="delete published runs too")
    delete.add_argument("--json", action="store_true", help="print what was deleted as JSON")
    delete.set_defaults(handler=runs_delete.delete)
    export = commands.add_parser("export", parents=[common],
                                 help="one row per run, as CSV or Parquet")
    _add_filters(export)
    export.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="csv (default, to stdout unless -o) or parquet (needs -o)")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE")
    export.set_defaults(handler=runs_export.export)
    runs_actions.register(commands, common)


def _compare(workspace: Workspace, args: argparse.Namespace) -> int:
    if len(args.runs) < 2:
        print("etude: runs compare needs two runs or more (e.g. etude runs compare a1b2 "
              "vision/mnist/baseline).", file=sys.stderr)
        return 2
    return runs_compare.compare(workspace, args)
