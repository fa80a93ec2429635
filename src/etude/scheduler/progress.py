"""What an experiment shows while it runs: a live summary on a terminal, plain lines otherwise.

Progress is status, not a result: it goes to standard error, so that a script's own output on
standard output stays clean to pipe or parse.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import IO, Any

from .job import DONE, ERROR, RUNNING, WAITING, Job


def _elapsed(job: Job) -> str:
    if job.started_at is None or job.ended_at is None:
        return ""
    seconds = max(0.0, job.ended_at - job.started_at)
    if seconds < 60:
        return f" in {seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f" in {hours}h{minutes:02d}m" if hours else f" in {minutes}m{secs:02d}s"


def job_label(job: Job) -> str:
    """`task/short-id [tag=value, ...]`: the tags tell apart jobs of one task."""
    if not job.tags:
        return job.name
    return f"{job.name} [{', '.join(f'{k}={v}' for k, v in job.tags.items())}]"


def _describe(job: Job) -> str:
    if job.state == DONE:
        return "done (reused)" if job.reused else f"done{_elapsed(job)}"
    if job.state == ERROR:
        return f"error ({job.reason})"
    if job.state == WAITING and job.retries:
        return f"timed out: starting attempt {job.retries + 1} of {job.max_retries + 1}"
    if job.state == WAITING and job.elsewhere:
        return "waiting (running in another process)"
    return job.state


class Progress:
    """Reports job changes. On a TTY: a live table (rich); else one line per change."""

    def __init__(self, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._display: Any = None
        self._console: Any = None

    def start(self) -> None:
        if not self.live:
            return
        # rich is imported only for a terminal: job processes and scripts piping output skip it.
        from rich.console import Console
        from rich.live import Live

        self._console = Console(file=self.stream)
        self._display = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=4,
            transient=True,
        )
        self._display.start()

    def stop(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None
        if self._jobs:
            self._line(f"etude: {self.summary()}")

    def summary(self) -> str:
        with self._lock:
            counts = Counter(job.state for job in self._jobs.values())
            reused = sum(1 for job in self._jobs.values() if job.reused)
        parts = [
            f"{counts.get(s, 0)} {s}" for s in (DONE, RUNNING, WAITING, ERROR) if counts.get(s)
        ]
        text = ", ".join(parts) or "no jobs"
        return text + (f" ({reused} reused)" if reused else "")

    def job_changed(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
        if job.state == ERROR:
            failure = f"{job.reason}: {job.message or ''}".rstrip(": ")
            after = f" (after {_elapsed(job)[4:]})" if _elapsed(job) else ""
            self._line(f"etude: {job_label(job)} failed: {failure}{after}")
            if job.dir.stderr.exists():
                self._line(f"       log: {job.dir.stderr}")
        elif self._display is not None:
            self._display.refresh()
        elif job.reused:
            pass  # counted in the summary: a rerun of 10,000 done jobs stays one line
        elif job.state != WAITING or job.elsewhere or job.retries:
            self._line(f"etude: {job_label(job)} {_describe(job)}")

    def _line(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        with self._lock:
            running = [job for job in self._jobs.values() if job.state == RUNNING]
        table.add_row(Text.assemble(("etude", "bold"), f" {self.summary()}"))
        for job in running[:8]:
            table.add_row(Text(f"  running {job.name}"))
        if len(running) > 8:
            table.add_row(Text(f"  ... and {len(running) - 8} more"))
        return table
