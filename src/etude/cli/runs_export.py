"""`etude runs export [filters] --format csv|parquet [-o FILE]`: one row per run, for a
spreadsheet or a data frame elsewhere.

The rows are those of `etude.tracking.runs_dataframe` (the same filters as `etude runs
list`), with its column names: the run's fields, each parameter as `Section/key` and the last
value of each metric as `metrics/TITLE/SERIES`, so that a file read back with pandas has the
columns a script would get from `runs_dataframe`. In CSV, lists and objects (tags, list
parameters) are written as JSON; in Parquet, tags stay a list of strings and a parameter
whose values have different types across runs is written as JSON text.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..workspace import Workspace, WorkspaceError
from .index import is_workspace

#: The first columns, in this order; the other fields, the parameters and the metrics follow.
LEAD_COLUMNS = ("id", "project", "name", "type", "state", "tags", "created", "started",
                "ended")


class ExportError(WorkspaceError):
    """The export cannot be made as asked; the message says what to change."""


def export(workspace: Workspace, args: argparse.Namespace) -> int:
    if args.format == "parquet":
        _need_parquet(args.output)
    frame = _frame(workspace, args)
    if args.format == "csv":
        _write_csv(frame, args.output)
    else:
        _write_parquet(frame, args.output)
    if args.output is not None:
        print(f"Wrote {len(frame)} runs to {args.output}.", file=sys.stderr)
    return 0


def _need_parquet(output: str | None) -> None:
    if output is None:
        raise ExportError("parquet is a binary format: give the file to write with -o FILE "
                          "(e.g. -o runs.parquet).")
    import importlib

    try:
        importlib.import_module("pyarrow")  # pandas writes Parquet with it
    except ImportError:
        raise ExportError("--format parquet needs pyarrow, which is not installed: "
                          "pip install pyarrow (or export --format csv).") from None


def _frame(workspace: Workspace, args: argparse.Namespace) -> Any:
    """The runs matching the filters of `args`, as a DataFrame in export order."""
    if not is_workspace(workspace):
        raise WorkspaceError(f"{workspace.path} is not an etude workspace (no runs/, jobs/ or "
                             "experiments/ in it); pass the workspace folder with --workspace.")
    try:
        import pandas as pd  # type: ignore[import-untyped]

        from ..tracking import runs_dataframe
    except ImportError as error:
        raise ExportError(f"etude runs export needs pandas ({error}): pip install pandas.") \
            from None
    from ..store import FilterError

    try:
        frame = runs_dataframe(
            workspace=workspace.path, where=args.where, project=args.project,
            tags=args.tag or None, state=args.state or None, type=args.type or None,
            search=args.search, include_archived=args.archived, order_by=args.sort,
            limit=args.limit, offset=args.offset)
    except (FilterError, ValueError) as exc:
        raise ExportError(f"bad filter: {exc}") from None
    if not len(frame):
        return pd.DataFrame(columns=list(LEAD_COLUMNS))
    frame = frame.reset_index()
    return frame[_ordered(list(frame.columns))]


def _ordered(columns: list[str]) -> list[str]:
    metrics = sorted(c for c in columns if c.startswith("metrics/"))
    params = sorted(c for c in columns if "/" in c and c not in metrics)
    fields = [c for c in columns if "/" not in c and c not in LEAD_COLUMNS]
    return [c for c in LEAD_COLUMNS if c in columns] + fields + params + metrics


def _as_json(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _write_csv(frame: Any, output: str | None) -> None:
    frame = frame.apply(lambda column: column.map(_as_json))
    if output is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        frame.to_csv(Path(output), index=False)


def _write_parquet(frame: Any, output: str | None) -> None:
    assert output is not None  # checked by _need_parquet
    for name in frame.columns:
        if name != "tags" and frame[name].dtype == object:
            frame[name] = _uniform(frame[name])
    frame.to_parquet(Path(output), index=False)


def _uniform(column: Any) -> Any:
    """`column` as Parquet can store it: unchanged when its values are all text, all
    booleans or all numbers; else each value as JSON text."""
    kinds = {_kind(value) for value in column if not _missing(value)}
    if len(kinds) <= 1 and "other" not in kinds:
        return column
    return column.map(lambda value: None if _missing(value) else json.dumps(value, default=str))


def _missing(value: Any) -> bool:
    """None, or the NaN pandas puts where a run lacks the column."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "text" if isinstance(value, str) else "other"
