"""`etude experiments list|show`: the experiments of a workspace, their runs and their jobs.

Read from the index (see `etude.store`), reconciled with the folders first: an experiment's
runs are written by the experiment process itself (and kept in `experiments/NAME/run.json`
and `runs.jsonl`, from which `etude index rebuild` restores them).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ..workspace import Workspace, WorkspaceError, process_alive
from .index import open_index, with_index
from .listing import print_table

if TYPE_CHECKING:
    from ..store import ExperimentInfo, ExperimentRun

ENDED = "ended"
RUNNING = "running"
INTERRUPTED = "interrupted"  # not ended, and its process is gone


def run_status(run: ExperimentRun | None) -> str:
    """`ended`, `running` (its process is alive) or `interrupted`."""
    if run is None:
        return INTERRUPTED
    if run.ended is not None:
        return INTERRUPTED if run.outcome == INTERRUPTED else ENDED
    record = {"pid": run.pid, "host": run.host, "create_time": run.create_time}
    return RUNNING if process_alive(record) else INTERRUPTED


def experiment_json(workspace: Workspace, info: ExperimentInfo) -> dict[str, Any]:
    last = info.last
    return {
        "name": info.name,
        "path": str(workspace.experiments / info.name / "run.json"),
        "status": run_status(last),
        "started": last.started if last else None,
        "ended": last.ended if last else None,
        "jobs": last.jobs if last else 0,
        "states": dict(sorted(info.states.items())),
        "runs": len(info.runs),
        "problems": [],
    }


def _time_text(value: float | None) -> str:
    return "?" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{count} {state}" for state, count in sorted(states.items()))


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    store = open_index(workspace)
    infos = with_index(store, lambda s: s.experiments())
    rows = [experiment_json(workspace, info) for info in infos]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    # rich is imported here, not at module level, so that `import etude` stays fast.
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"No experiments in {escape(str(workspace.experiments))}.", highlight=False)
        return 0
    table = Table(
        "NAME", "STARTED", "ENDED", "RUNS", "JOBS", "STATES", box=None, header_style="bold"
    )
    for row in rows:
        ended = _time_text(row["ended"]) if row["status"] == ENDED else row["status"]
        table.add_row(
            escape(row["name"]),
            _time_text(row["started"]),
            ended,
            str(row["runs"]),
            str(row["jobs"]),
            _states_text(row["states"]),
        )
    console.print(table, highlight=False)
    return 0


def _show(workspace: Workspace, args: argparse.Namespace) -> int:

    store = open_index(workspace)
    infos = with_index(store, lambda s: s.experiments(args.name))
    if not infos:
        names = [info.name for info in with_index(store, lambda s: s.experiments())]
        known = ", ".join(names) if names else "none"
        raise WorkspaceError(
            f"no experiment named {args.name!r} in {workspace.path} (experiments: {known})."
        )
    info = infos[0]
    where = f"experiment = {json.dumps(info.name)}"
    rows = with_index(store, lambda s: s.query_jobs(where, sort=args.sort))
    if args.json:
        data = experiment_json(workspace, info)
        data["history"] = [
            {**run.__dict__, "status": run_status(run)} for run in info.runs
        ]
        data["job_list"] = [row.to_json(workspace) for row in rows]
        print(json.dumps(data, indent=2))
        return 0
    print(f"Experiment {info.name} ({len(info.runs)} runs, {info.job_count} jobs)")
    for number, run in enumerate(info.runs, 1):
        ended = _time_text(run.ended) if run.ended is not None else run_status(run)
        counts = f"  [{_states_text(run.counts)}]" if run.counts else ""
        print(
            f"  run {number}: {_time_text(run.started)} -> {ended}  {run.jobs} jobs  "
            f"{run.host or '?'}:{run.pid or '?'}{counts}"
        )
    sys.stdout.flush()
    print_table(workspace, rows)
    return 0


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `experiments` and its sub-commands to `groups`; `common` holds the shared options."""
    group = groups.add_parser("experiments", help="list experiments, their runs and jobs")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser(
        "list", parents=[common], help="list experiments with their jobs' states"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=_list)
    show = commands.add_parser(
        "show", parents=[common], help="an experiment's runs and the jobs it used"
    )
    show.add_argument("name", metavar="NAME", help="the experiment's name")
    show.add_argument("--sort", metavar="FIELDS", help="sort its jobs (see jobs list --sort)")
    show.add_argument("--json", action="store_true", help="print a JSON object")
    show.set_defaults(handler=_show)
