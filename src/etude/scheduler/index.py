"""The experiment's side of the index: its jobs and their state changes, sent in batches to
an index writer process (`etude.store.writer`) so that the scheduler never waits for the
database and never shares its interpreter with SQLAlchemy.

The scheduler thread only appends a small tuple per change; a sender thread turns what
accumulated into one JSON line every FLUSH_INTERVAL and writes it to the writer's standard
input. If the writer cannot reach the index (the PostgreSQL server is down, say), it says so
once and the experiment goes on — the job folders are complete — and `etude index rebuild`
catches up later.
"""

from __future__ import annotations

import json
import logging
import select
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from .job import DONE, ERROR, RUNNING, WAITING, Job

if TYPE_CHECKING:
    from ..workspace import Workspace

logger = logging.getLogger("etude.scheduler")

FLUSH_INTERVAL = 0.5  # seconds between two batches: each costs the writer ~10 ms of CPU
CLOSE_TIMEOUT = 60.0  # how long the experiment waits at exit for its last batch
WRITER_MODULE = "etude.store.writer"
WRITER_DONE = b"ended\n"  # what the writer prints once the run's end is in the index


def job_event(job: Job, workspace: Workspace) -> list[Any]:
    """The writer's `job` event for `job` now (see etude.store.writer); no I/O."""
    folder = job.dir.path.as_posix()[len(workspace.path.as_posix()) + 1 :]
    if job.reused or (job.elsewhere and job.state == WAITING):
        # done before, or run by another experiment: not this experiment's to describe
        return ["use", folder, job.type_name, job.state == DONE]
    slurm = getattr(job.process, "slurm_job_id", None)
    state = job.state
    return [
        "job",
        folder,
        job.id,
        job.type_name,
        state,
        job.reason,
        job.message,
        job.submitted_at,
        job.started_at if state in (RUNNING, DONE, ERROR) else None,
        job.ended_at if state in (DONE, ERROR) else None,
        job.process is not None,  # launched (or followed) by this experiment
        None if slurm is None else str(slurm),
        job.launcher_name,
    ]


class IndexWriter:
    """Receives job changes (a scheduler `Reporter`) and feeds them to the index writer."""

    def __init__(self, workspace: Workspace, experiment: str, store_url: str | None) -> None:
        self.workspace = workspace
        self.experiment = experiment
        self.store_url = store_url
        self._events: list[Any] = []
        self._cond = threading.Condition()
        self._closing = False
        self._process: subprocess.Popen[bytes] | None = None
        self._sender: threading.Thread | None = None

    # -- called by the experiment and the scheduler ------------------------------------------
    def start(self, started: float) -> None:
        argv = [sys.executable, "-m", WRITER_MODULE, str(self.workspace.path), self.experiment,
                repr(started)]
        if self.store_url:
            argv.append(self.store_url)
        try:
            self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        except OSError as exc:
            logger.warning("etude: cannot start the index writer (%s); no index for this run", exc)
            return
        self._events.append(["run", 0])
        self._sender = threading.Thread(target=self._send, name="etude-index", daemon=True)
        self._sender.start()

    def job_changed(self, job: Job) -> None:
        if self._process is None:
            return
        event = job_event(job, self.workspace)
        with self._cond:
            self._events.append(event)

    def jobs_listed(self, count: int) -> None:
        with self._cond:
            self._events.append(["run", count])

    def close(self, jobs: list[Job], ended: float | None, outcome: str) -> None:
        """Send what is queued and the run's end (with its counts and outcome); wait for the
        writer."""
        if self._process is None or self._sender is None:
            return
        counts = dict(Counter(job.state for job in jobs))
        with self._cond:
            self._events.append(["end", len(jobs), counts, ended or time.time(), outcome])
            self._closing = True
            self._cond.notify_all()
        self._sender.join()
        process, self._process = self._process, None
        assert process.stdout is not None
        # The writer says `ended` once the run's end is written; its own exit (closing the
        # database, the interpreter) is not waited for: a thread reaps it.
        ready, _, _ = select.select([process.stdout], [], [], CLOSE_TIMEOUT)
        if ready and process.stdout.readline() == WRITER_DONE:
            threading.Thread(target=process.wait, name="etude-index-reaper", daemon=True).start()
            return
        if process.poll() is None:
            logger.warning(
                "etude: the index did not answer within %.0f s; the experiment ends without "
                "its last changes there. The job folders have them: run `etude index check "
                "-w %s` to catch up.",
                CLOSE_TIMEOUT,
                self.workspace.path,
            )
            process.kill()
        process.wait()

    # -- the sender thread --------------------------------------------------------------------
    def _send(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        pipe = self._process.stdin
        closing = False
        while not closing:
            with self._cond:
                if not self._closing:
                    self._cond.wait(FLUSH_INTERVAL)
                batch, self._events = self._events, []
                closing = self._closing
            if not batch:
                continue
            try:
                pipe.write(json.dumps(batch, separators=(",", ":")).encode() + b"\n")
                pipe.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                logger.warning("etude: the index writer stopped (%s); no index updates", exc)
                break
        try:
            pipe.close()
        except OSError:
            pass  # the writer is gone: nothing left to tell it


class Reporters:
    """Hands each job change to several reporters (the progress display, the index)."""

    def __init__(self, *reporters: Any) -> None:
        self.reporters = reporters

    def job_changed(self, job: Job) -> None:
        for reporter in self.reporters:
            reporter.job_changed(job)
