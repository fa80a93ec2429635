"""`etude experiments list`: the experiments of a workspace and the states of their jobs.

Reads `WORKSPACE/experiments/NAME/run.json` (written by the experiment process) and the folder
of every job it lists. An unreadable record is shown with its problem, never fatal.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..workspace import CorruptFileError, JobDir, Workspace, process_alive, read_json, read_status
from ..workspace.layout import short_name
from ..workspace.status import STATES

ENDED = "ended"
RUNNING = "running"
INTERRUPTED = "interrupted"  # not ended, and its process is gone
UNKNOWN = "unknown"  # no readable record
MISSING = "missing"  # a listed job whose folder no longer exists


@dataclass
class ExperimentRow:
    """One experiment as `experiments list` shows it."""

    name: str
    record: Path
    status: str = UNKNOWN
    started: float | None = None
    ended: float | None = None
    jobs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.record),
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "jobs": self.jobs,
            "states": self.states,
            "problems": self.problems,
        }


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _listed_job(workspace: Workspace, entry: Any) -> JobDir | None:
    """The folder of a `run.json` job entry; the id and task win over the stored path so that a
    moved workspace still resolves."""
    if not isinstance(entry, dict):
        return None
    job_id, task, path = entry.get("id"), entry.get("task"), entry.get("path")
    if isinstance(job_id, str) and isinstance(task, str) and job_id and task:
        return workspace.job_dir(task, job_id)
    if isinstance(path, str) and path:
        folder = Path(path)
        return JobDir(folder, short_name(folder.parent.name))
    return None


def _count_states(workspace: Workspace, row: ExperimentRow, entries: list[Any]) -> None:
    row.jobs = len(entries)
    counts = dict.fromkeys(STATES, 0)
    for index, entry in enumerate(entries):
        job = _listed_job(workspace, entry)
        if job is None:
            row.problems.append(f"{row.record}: jobs[{index}] names no job (id, task or path)")
            state = UNKNOWN
        elif not job.path.is_dir():
            state = MISSING
        else:
            state = read_status(job).state
        counts[state] = counts.get(state, 0) + 1
    row.states = {state: count for state, count in counts.items() if count}


def read_experiment(workspace: Workspace, folder: Path) -> ExperimentRow:
    """Read `folder/run.json` and the states of its jobs; never raises for bad files."""
    row = ExperimentRow(name=folder.name, record=folder / "run.json")
    try:
        record = read_json(row.record)
    except FileNotFoundError:
        row.problems.append(f"{row.record}: missing")
        return row
    except CorruptFileError as exc:
        row.problems.append(str(exc))
        return row
    if not isinstance(record, dict):
        row.problems.append(f"{row.record}: expected a JSON object, found {type(record).__name__}")
        return row
    row.started, row.ended = _number(record.get("started")), _number(record.get("ended"))
    process = record.get("process")
    if row.ended is not None:
        row.status = ENDED
    elif isinstance(process, dict) and process_alive(process):
        row.status = RUNNING
    else:
        row.status = INTERRUPTED
    entries = record.get("jobs", [])
    if not isinstance(entries, list):
        row.problems.append(f"{row.record}: 'jobs' is a {type(entries).__name__}, not a list")
        entries = []
    _count_states(workspace, row, entries)
    return row


def _time_text(value: float | None) -> str:
    return "?" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _ended_text(row: ExperimentRow) -> str:
    return _time_text(row.ended) if row.status == ENDED else row.status


def _list(workspace: Workspace, args: argparse.Namespace) -> int:
    folders = sorted(workspace.experiments.iterdir()) if workspace.experiments.is_dir() else []
    rows = [read_experiment(workspace, folder) for folder in folders if folder.is_dir()]
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=2))
        return 0
    # rich is imported here, not at module level, so that `import etude` stays fast.
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(f"No experiments in {escape(str(workspace.experiments))}.", highlight=False)
        return 0
    table = Table("NAME", "STARTED", "ENDED", "JOBS", "STATES", box=None, header_style="bold")
    for row in rows:
        states = ", ".join(f"{count} {state}" for state, count in row.states.items())
        name = escape(row.name) + (" [yellow](!)[/]" if row.problems else "")
        table.add_row(name, _time_text(row.started), _ended_text(row), str(row.jobs), states)
    console.print(table, highlight=False)
    for row in rows:
        for problem in row.problems:
            console.print(f"[yellow](!)[/] {escape(row.name)}: {escape(problem)}", highlight=False)
    return 0


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `experiments` and its sub-commands to `groups`; `common` holds the shared options."""
    group = groups.add_parser("experiments", help="list experiments and their jobs' states")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser(
        "list", parents=[common], help="list experiments with their jobs' states"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=_list)
