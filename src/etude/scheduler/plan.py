"""Dry runs: which jobs an experiment would run, and why, without touching anything."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO

from ..workspace import Workspace, is_locked, read_done, read_status
from .code_changes import CodeChangeReport
from .job import Job


@dataclass
class PlannedJob:
    job: Job
    action: str  # "run", "reuse" or "wait"
    why: str


class DryRunPlan:
    """Collects submitted jobs and what a real run would do with each."""

    def __init__(self, code_report: CodeChangeReport) -> None:
        self.code_report = code_report
        self.entries: list[PlannedJob] = []
        self._by_id: dict[str, PlannedJob] = {}

    def add(self, job: Job) -> PlannedJob:
        folder = job.dir
        done = read_done(folder, repair=False)
        if done is not None:
            entry = self._done(job, done)
        elif is_locked(folder.lock):
            entry = PlannedJob(job, "wait", "running in another process")
        elif folder.failed.exists():
            status = read_status(folder)
            entry = PlannedJob(job, "run", f"failed before ({status.reason or 'error'})")
        elif folder.process.exists():
            entry = PlannedJob(job, "run", "started before but never finished")
        elif folder.params.exists():
            entry = PlannedJob(job, "run", "submitted before but never started")
        else:
            entry = PlannedJob(job, "run", "new")
        waits_on = [d.name for d in job.dependencies if self._by_id[d.id].action != "reuse"]
        if waits_on and entry.action == "run":
            entry.why += f"; after {', '.join(waits_on)}"
        self.entries.append(entry)
        self._by_id[job.id] = entry
        return entry

    def _done(self, job: Job, done: dict) -> PlannedJob:
        """A done job: reused, or run again as `submit(rerun=...)` asks."""
        changed = self.code_report.code_changed(job, done)
        note = f"; its code changed since ({self.code_report.files(job)})" if changed else ""
        if job.rerun is True:
            return PlannedJob(job, "run", f"done before, forced (rerun=True){note}")
        if job.rerun == "changed" and changed:
            return PlannedJob(job, "run", f"done before, rerun=\"changed\"{note}")
        job.reused = True
        return PlannedJob(job, "reuse", f"done before{note}")

    def explain_new(self, workspace: Workspace, store_url: str | None) -> None:
        """For each new job, name the closest done job of its task and the values that differ
        (read from the index when there is one, else from the task's folders)."""
        from ..store.compare import changes_text, closest, done_jobs_of_task, plain
        from ..store.records import flatten_config

        by_task: dict[str, list[PlannedJob]] = {}
        for entry in self.entries:
            if entry.action == "run" and entry.why.startswith("new"):
                by_task.setdefault(entry.job.type_name, []).append(entry)
        for type_name, entries in by_task.items():
            done = list(done_jobs_of_task(workspace, type_name, store_url))
            if not done:
                continue
            root = entries[0].job.dir.name  # the task's own values: `learn.lr`
            for entry in entries:
                params = plain(flatten_config(entry.job.config_params))
                found = closest(iter(done), params)
                if found is not None:
                    name, changes = found
                    entry.why += f" (closest done: {name}: {changes_text(changes, f'{root}.')})"

    def print(self, workspace: Workspace, stream: IO[str] | None = None) -> None:
        out = stream or sys.stdout
        runs = sum(1 for e in self.entries if e.action == "run")
        print(
            f"etude dry run in {workspace.path}: {runs} of {len(self.entries)} job(s) would run",
            file=out,
        )
        for entry in self.entries:
            print(f"  {entry.action:<5} {entry.job.name:<40} {entry.why}", file=out)
