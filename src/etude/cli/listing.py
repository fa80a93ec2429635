"""`etude jobs list` and `etude jobs diff`: jobs as the index holds them (see `etude.store`).

Both open the index through `cli.index.open_index`, which first reconciles it with the job
folders, so what they show is what the folders say.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from ..workspace import Workspace, WorkspaceError
from ..workspace.status import DONE, ERROR, RUNNING, STATES, UNSCHEDULED, WAITING
from .index import open_index, with_index

if TYPE_CHECKING:
    from ..store import JobRow, Store

STATE_ALIASES = {"failed": ERROR}
STATE_STYLES = {
    DONE: "green",
    ERROR: "red",
    RUNNING: "cyan",
    WAITING: "yellow",
    UNSCHEDULED: "dim",
}
#: Fields of a job row that `--columns` can show besides `params.PATH` and `tags.NAME`.
ROW_COLUMNS = (
    "experiment", "kind", "launcher", "cluster_job_id", "retries", "submitted", "started",
    "ended", "duration", "message", "folder",
)


# -- argument types --------------------------------------------------------------------------
def parse_state(text: str) -> str:
    """A job state name (`failed` is accepted for `error`), for argparse."""
    state = STATE_ALIASES.get(text.lower(), text.lower())
    if state not in STATES:
        raise argparse.ArgumentTypeError(
            f"unknown state {text!r}; choose from {', '.join(STATES)} ('failed' means error)"
        )
    return state


def parse_tag(text: str) -> tuple[str, str | None]:
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"tag filter {text!r}: expected KEY=VALUE or KEY")
    return key, value if sep else None


def parse_columns(text: str) -> list[str]:
    """`--columns params.lr,tags.model,experiment`, checked, for argparse."""
    columns = [part.strip() for part in text.split(",") if part.strip()]
    for column in columns:
        head, dot, rest = column.partition(".")
        if (head in ("params", "tags") and dot and rest) or column in ROW_COLUMNS:
            continue
        raise argparse.ArgumentTypeError(
            f"unknown column {column!r}; use params.PATH, tags.NAME or one of "
            f"{', '.join(ROW_COLUMNS)}"
        )
    return columns


# -- jobs list -------------------------------------------------------------------------------
def _quoted(text: str) -> str:
    """`text` as a string literal of the filter grammar."""
    return json.dumps(text)


def _tag_condition(key: str, value: str | None) -> str:
    """`--tag KEY[=VALUE]` as a filter: a value that reads as a number or a boolean matches
    tags with that value (`--tag lr=0.1`, `--tag flag=true`), else the text."""
    name = f"tags.{key}" if key.isidentifier() else f"tags.{_quoted(key)}"
    if value is None:
        return f"tags has {_quoted(key)}"
    if value.lower() in ("true", "false"):
        return f"{name} = {value.lower()}"
    try:
        float(value)
    except ValueError:
        return f"{name} = {_quoted(value)}"
    return f"({name} = {value} or {name} = {_quoted(value)})"


def list_filter(args: argparse.Namespace) -> str | None:
    """The filter of `jobs list`: `--where` and the `--state/--task/--tag` shortcuts, joined."""
    parts = []
    if args.where:
        from ..store.filters import compile_job_filter  # errors point into the user's text

        compile_job_filter(args.where)
        parts.append(f"({args.where})")
    if args.state:
        parts.append(f"state in ({', '.join(args.state)})")
    if args.task:
        parts.append(f"task in ({', '.join(_quoted(task) for task in args.task)})")
    parts.extend(_tag_condition(key, value) for key, value in args.tag or ())
    return " and ".join(parts) or None


def _tags_text(tags: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    from ..store import FilterError  # imported here: the store loads SQLAlchemy

    try:
        store = open_index(workspace)
        if args.count:
            counts = with_index(store, lambda s: s.count_jobs(list_filter(args)))
            return _print_counts(counts, args.json)
        rows = with_index(
            store,
            lambda s: s.query_jobs(
                list_filter(args), sort=args.sort, limit=args.limit, offset=args.offset
            ),
        )
    except FilterError as exc:
        print(f"etude: bad --where/--sort: {exc}", file=sys.stderr)
        return 2
    columns = args.columns or []
    extra = column_values(store, rows, columns) if columns else {}
    if args.json:
        data = [row.to_json(workspace) for row in rows]
        for item, row in zip(data, rows, strict=True):
            if columns:
                item["columns"] = extra[row.pk]
        print(json.dumps(data, indent=2))
        return 0
    infra_ids = [row.id for row in rows if row.kind == "infra"]
    repeated = with_index(store, lambda s: s.repeated_ids(infra_ids)) if infra_ids else set()
    print_table(workspace, rows, columns, extra, repeated)
    return 0


def column_values(store: Store, rows: list[JobRow], columns: list[str]) -> dict[int, dict]:
    """pk -> {column: value} for the `--columns` of `rows` (parameters in one query)."""
    paths = [c.split(".", 1)[1] for c in columns if c.startswith("params.")]
    params = store.params_of([row.pk for row in rows], paths) if paths else {}
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        values: dict[str, Any] = {}
        for column in columns:
            head, _, rest = column.partition(".")
            if head == "params":
                values[column] = params.get(row.pk, {}).get(rest)
            elif head == "tags":
                values[column] = row.tags.get(rest)
            else:
                values[column] = getattr(row, column)
        found[row.pk] = values
    return found


def _print_counts(counts: dict[str, int], as_json: bool) -> int:
    ordered = {state: counts[state] for state in STATES if state in counts}
    if as_json:
        print(json.dumps(ordered))
    else:
        for state, count in ordered.items():
            print(f"{state:<12} {count}")
        print(f"{'total':<12} {sum(ordered.values())}")
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)


def _header(column: str) -> str:
    """`params.model.hidden` -> `model.hidden`; `experiment` -> `EXPERIMENT`."""
    head, dot, rest = column.partition(".")
    return rest if dot and head in ("params", "tags") else column.upper()


def print_table(
    workspace: Workspace,
    rows: list[Any],
    columns: list[str] | None = None,
    extra: dict[int, dict[str, Any]] | None = None,
    repeated: set[str] | frozenset[str] = frozenset(),
) -> None:
    """The table of jobs every command prints; `columns` (values in `extra`) are added.

    Each ID shown names its job for the other commands (see `shown_id`; `repeated` holds
    the ids that several jobs of the workspace have)."""
    # rich is imported here, not at module level, so that `import etude` stays fast.
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"No jobs match in {escape(str(workspace.path))}.", highlight=False)
        return
    columns = columns or []
    table = Table(
        "ID", "TASK", "STATE", "REASON", "TAGS", "DURATION", *map(_header, columns),
        box=None, header_style="bold",
    )
    for row in rows:
        state = f"[{STATE_STYLES.get(row.state, '')}]{row.state}[/]"
        if row.problems:
            state += " [yellow](!)[/]"
        values = (extra or {}).get(row.pk, {})
        table.add_row(
            escape(shown_id(row, repeated)),
            escape(row.task),
            state,
            escape(row.reason or ""),
            escape(_tags_text(row.tags)),
            _duration_text(row.duration),
            *(escape(_cell(values.get(column))) for column in columns),
        )
    table.columns[0].no_wrap = True
    table.columns[2].no_wrap = True
    console.print(table, highlight=False)
    for row in rows:
        for problem in row.problems:
            shown = escape(shown_id(row, repeated))
            console.print(f"[yellow](!)[/] {shown}: {escape(problem)}", highlight=False)


def shown_id(row: JobRow, repeated: set[str] | frozenset[str] = frozenset()) -> str:
    """The ID column of `row`, a reference `Workspace.find_job` resolves: 12 characters of a
    task job's id; a pydantic-infra job's whole uid (cut, `arch=ResNet-` would name many),
    or its folder when other jobs share the uid (`default` in several methods)."""
    if row.kind != "infra":
        return row.id[:12]
    return row.folder if row.id in repeated else row.id


# -- jobs diff -------------------------------------------------------------------------------
def _indexed(store: Store, workspace: Workspace, reference: str) -> JobRow:
    """The index's row of the job that `reference` names (see `Workspace.find_job`)."""
    job = workspace.find_job(reference)
    folder = job.path.as_posix()[len(workspace.path.as_posix()) + 1 :]
    rows = store.query_jobs(f"folder = {json.dumps(folder)}")
    if not rows:
        raise WorkspaceError(
            f"{job.label} is not in the index yet; run `etude index check -w {workspace.path}`."
        )
    return rows[0]


def _diff(workspace: Workspace, args: argparse.Namespace) -> int:
    store = open_index(workspace)
    first = with_index(store, lambda s: _indexed(s, workspace, args.jobs[0]))
    second = with_index(store, lambda s: _indexed(s, workspace, args.jobs[1]))
    from ..store.compare import MISSING, parameter_changes, shown

    changes = parameter_changes(store.job_params(first.pk), store.job_params(second.pk))
    if args.json:
        print(json.dumps({
            "first": first.to_json(workspace),
            "second": second.to_json(workspace),
            "changes": [
                {"path": path, "first": None if a is MISSING else a,
                 "second": None if b is MISSING else b,
                 "only_in": "first" if b is MISSING else "second" if a is MISSING else None}
                for path, a, b in changes
            ],
        }, indent=2))
        return 0
    print(f"{first.task}/{first.id[:12]} -> {second.task}/{second.id[:12]}")
    if first.task != second.task:
        print(f"  task: {first.task} -> {second.task}")
    for path, a, b in changes:
        print(f"  {path}: {shown(a)} -> {shown(b)}")
    if not changes and first.task == second.task:
        print("  same parameters (they differ only in values left out of identifiers)")
    return 0


def add_diff(diff: argparse.ArgumentParser) -> None:
    diff.add_argument("jobs", metavar="ID", nargs=2, help="two job ids (prefixes) or folders")
    diff.add_argument("--json", action="store_true", help="print a JSON object")
    diff.set_defaults(handler=_diff)


# -- parser ---------------------------------------------------------------------------------
def add_list(listing: argparse.ArgumentParser) -> None:
    listing.add_argument(
        "--state",
        action="append",
        type=parse_state,
        metavar="STATE",
        help=f"only jobs in this state ({', '.join(STATES)}; failed = error); repeat for several",
    )
    listing.add_argument(
        "--task",
        action="append",
        metavar="NAME",
        help="only jobs of this task: xp.learn or learn (case-insensitive)",
    )
    listing.add_argument(
        "--tag",
        action="append",
        type=parse_tag,
        metavar="KEY[=VALUE]",
        help="only jobs with this tag (and value); repeat to require several",
    )
    listing.add_argument(
        "--where",
        metavar="FILTER",
        help='a filter such as \'params.lr < 0.01 and tags.model = "cnn"\' (see docs/store.md)',
    )
    listing.add_argument(
        "--sort",
        metavar="FIELDS",
        help="sort by these fields, comma-separated; -FIELD for descending (default: task, id)",
    )
    listing.add_argument(
        "--limit", type=_positive, metavar="N", help="show at most N jobs (default: all)"
    )
    listing.add_argument(
        "--offset", type=_positive, default=0, metavar="N", help="skip the first N jobs"
    )
    listing.add_argument(
        "--count", action="store_true", help="print how many jobs match, per state"
    )
    listing.add_argument(
        "--columns",
        type=parse_columns,
        metavar="COLUMNS",
        help="more columns, comma-separated: params.PATH, tags.NAME, experiment, submitted...",
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=_list)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


