"""`etude runs compare RUN RUN [RUN...]`: parameters and last metric values side by side.

Parameters that every run has with the same value are hidden (`--all` shows them): the
question is almost always "what did I change, and what did it do?". Values are compared as
JSON, so `1`, `1.0`, `"1"` and `true` differ (the types were recorded on purpose) and two
NaNs are equal. Resource-monitor series (`:monitor:...`) are left out unless `--all`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..workspace import Workspace
from .runs_format import console, print_json, state_markup, text
from .runs_resolve import resolve_rows, run_of

MONITOR_PREFIX = ":monitor:"
ABSENT = "—"


def compare(workspace: Workspace, args: argparse.Namespace) -> int:
    rows = resolve_rows(workspace, args.runs)
    data = comparison([run_of(workspace, row) for row in rows], rows, everything=args.all)
    if args.json:
        print_json(data)
        return 0
    _print(data, everything=args.all)
    return 0


def comparison(runs: list[Any], rows: list[Any], *, everything: bool) -> dict[str, Any]:
    """`{"runs": [...], "params": [...], "metrics": [...]}` of `runs` (and their index `rows`,
    which hold a job's state for the run of a job): each parameter and metric with one
    value per run (None where a run lacks it) and whether all are the same. Without
    `everything`, `params` holds only the differing ones and `metrics` no monitor series."""
    params = [run.params for run in runs]
    keys = sorted({key for values in params for key in values})
    changed = []
    for key in keys:
        per_run = [own.get(key, _Missing) for own in params]
        same = _same(per_run)
        if everything or not same:
            changed.append({"key": key, "values": [None if v is _Missing else v for v in per_run],
                            "present": [v is not _Missing for v in per_run], "same": same})
    last = [_last_values(run.metrics) for run in runs]
    series = sorted({name for values in last for name in values})
    metrics = [{"title": title, "series": name,
                "values": [values.get((title, name)) for values in last]}
               for title, name in series if everything or not title.startswith(MONITOR_PREFIX)]
    return {"runs": [{"id": row.id, "project": row.project, "name": row.name,
                      "state": row.state, "reason": row.reason} for row in rows],
            "params": changed, "metrics": metrics}


class _Missing:
    """Marks a parameter a run does not have (None is a value a run may have)."""


def _same(values: list[Any]) -> bool:
    encoded = {json.dumps(v, sort_keys=True, default=str) if v is not _Missing else "\0absent"
               for v in values}
    return len(encoded) == 1


def _last_values(metrics: dict[str, dict[str, dict[str, Any]]]) -> dict[tuple[str, str], Any]:
    return {(title, series): summary.get("last") for title, by_series in metrics.items()
            for series, summary in by_series.items()}


def _print(data: dict[str, Any], *, everything: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    headers = [f"{run['id'][:8]} {run['project']}/{run['name']}" for run in data["runs"]]
    states = [state_markup(run["state"], run["reason"]) for run in data["runs"]]
    params = Table("PARAMETER", *map(escape, headers), box=None, header_style="bold")
    params.add_row("state", *states)
    for row in data["params"]:
        cells = [escape(_cell(value, present)) for value, present in
                 zip(row["values"], row["present"], strict=True)]
        params.add_row(escape(row["key"]), *cells,
                       style="dim" if row["same"] and everything else None)
    out.print(params)
    if not data["params"]:
        note = "no parameters" if everything else "the same parameters (--all shows them)"
        out.print(f"\nThese runs have {note}.")
    if data["metrics"]:
        metrics = Table("METRIC (last)", *map(escape, headers), box=None, header_style="bold")
        for row in data["metrics"]:
            name = row["title"] if row["title"] == row["series"] else \
                f"{row['title']}/{row['series']}"
            metrics.add_row(escape(name), *(escape(_metric(v)) for v in row["values"]))
        out.print()
        out.print(metrics)


def _cell(value: Any, present: bool) -> str:
    """A parameter in full (two values shown alike must be alike), as JSON writes it."""
    if not present:
        return ABSENT
    return text(value) if value is not None else "null"


def _metric(value: Any) -> str:
    return ABSENT if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
