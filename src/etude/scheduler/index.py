"""The experiment's side of the index: its jobs and their state changes, written in batches
from a background thread so that the scheduler never waits for the database.

The thread imports the store (SQLAlchemy) itself: an experiment pays for that import in
parallel with its own work, and job processes never do. If the index cannot be written (the
PostgreSQL server is down, say), the experiment goes on — the job folders are complete — and
says once how to catch up (`etude index rebuild`).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from .job import DONE, ERROR, RUNNING, WAITING, Job

if TYPE_CHECKING:
    from ..store import JobRecord, Store
    from ..workspace import Workspace

logger = logging.getLogger("etude.scheduler")

FLUSH_INTERVAL = 0.25  # seconds between two batches
CLOSE_TIMEOUT = 60.0  # how long the experiment waits at exit for its last batch


class Snapshot:
    """A job's state at one instant, taken in the scheduler thread (cheap: no I/O)."""

    __slots__ = ("cluster_job_id", "elsewhere", "ended", "job", "launched", "message", "reason",
                 "reused", "started", "state")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.state = job.state
        self.reason = job.reason
        self.message = job.message
        self.started = job.started_at
        self.ended = job.ended_at
        self.reused = job.reused
        self.elsewhere = job.elsewhere
        self.launched = job.process is not None  # by this experiment
        slurm = getattr(job.process, "slurm_job_id", None)
        self.cluster_job_id = None if slurm is None else str(slurm)


class IndexWriter:
    """Receives job changes (a scheduler `Reporter`) and writes them to the workspace's index."""

    def __init__(self, workspace: Workspace, experiment: str, store_url: str | None) -> None:
        self.workspace = workspace
        self.experiment = experiment
        self.store_url = store_url
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._written: set[str] = set()  # jobs whose parameters this writer has sent
        self._failed = False
        self.run_started = 0.0

    # -- called by the experiment and the scheduler ------------------------------------------
    def start(self, started: float) -> None:
        self.run_started = started
        self._events.put(("run", None))
        self._thread = threading.Thread(target=self._loop, name="etude-index", daemon=True)
        self._thread.start()

    def job_changed(self, job: Job) -> None:
        self._events.put(("job", Snapshot(job)))

    def jobs_listed(self, count: int) -> None:
        self._events.put(("count", count))

    def close(self, jobs: list[Job], ended: float | None) -> None:
        """Write what is queued and the run's end (with its counts); wait for it."""
        if self._thread is None:
            return
        counts = dict(Counter(job.state for job in jobs))
        self._events.put(("end", (len(jobs), counts, ended or time.time())))
        self._events.put(None)
        self._thread.join(CLOSE_TIMEOUT)
        if self._thread.is_alive():
            logger.warning(
                "etude: the index did not answer within %.0f s; the experiment ends without "
                "its last changes there. The job folders have them: run `etude index check "
                "-w %s` to catch up.",
                CLOSE_TIMEOUT,
                self.workspace.path,
            )
        self._thread = None

    # -- the thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        store = self._open()
        try:
            finished = False
            while not finished:
                batch, finished = self._collect()
                if store is not None and not self._failed:
                    self._write(store, batch)
        finally:
            if store is not None:
                store.close()

    def _open(self) -> Store | None:
        try:
            from ..store import open_store  # imported here: SQLAlchemy loads in this thread

            return open_store(self.workspace, self.store_url)
        except Exception as exc:  # the experiment goes on without an index
            self._give_up(exc)
            return None

    def _collect(self) -> tuple[list[Any], bool]:
        """Events until a pause of FLUSH_INTERVAL after the first, or the end marker."""
        batch = [self._events.get()]
        if batch[0] is None:
            return [], True
        deadline = time.monotonic() + FLUSH_INTERVAL
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                break
            if event is None:
                return batch, True
            batch.append(event)
        return batch, False

    def _write(self, store: Store, batch: list[Any], *, again: bool = True) -> None:
        try:
            self._write_batch(store, batch)
        except Exception as exc:
            if not (again and _corrupt_sqlite(store, exc)):
                self._give_up(exc)
                return
            from ..store.open import recover  # moves the file aside, rebuilds from folders

            try:
                store.take_over(recover(store.workspace, store.location, str(exc)))
            except Exception as failure:
                self._give_up(failure)
                return
            self._written.clear()
            self._write(store, batch, again=False)

    def _write_batch(self, store: Store, batch: list[Any]) -> None:
        latest: dict[str, Snapshot] = {}
        for kind, value in batch:
            if kind == "job":
                latest[value.job.id] = value
            elif kind == "run":
                self._write_run(store, None)
        if latest:
            self._write_jobs(store, list(latest.values()))
        for kind, value in batch:
            if kind in ("count", "end"):
                self._write_run(store, value)

    def _write_run(self, store: Store, value: Any) -> None:
        import psutil  # lazily, as everywhere in the scheduler

        jobs, counts, ended = value if isinstance(value, tuple) else (value or 0, None, None)
        store.write_experiment_run(
            self.experiment,
            started=self.run_started,
            ended=ended,
            host=socket.gethostname(),
            pid=os.getpid(),
            create_time=psutil.Process().create_time(),
            jobs_count=jobs,
            counts=counts,
        )

    def _write_jobs(self, store: Store, snapshots: list[Snapshot]) -> None:
        from ..store.records import read_job_folder, relative_folder

        folder = {id(s): relative_folder(self.workspace, s.job.dir) for s in snapshots}
        passive = [s for s in snapshots if s.reused or (s.elsewhere and s.state == WAITING)]
        active = [s for s in snapshots if not (s.reused or (s.elsewhere and s.state == WAITING))]
        records = [self._record(s, folder[id(s)]) for s in active]
        if passive:  # jobs this experiment does not run: link them; read unknown ones
            known = store.known_folders([folder[id(s)] for s in passive])
            records += [
                read_job_folder(self.workspace, s.job.dir)
                for s in passive
                if folder[id(s)] not in known
            ]
            store.link_jobs(self.experiment, [folder[id(s)] for s in passive])
        store.write_jobs(records, experiment=self.experiment)

    def _record(self, snapshot: Snapshot, folder: str) -> JobRecord:
        from ..store.records import JobRecord, attempts_before, flatten_config

        job = snapshot.job
        params = None
        if job.id not in self._written:
            try:
                params = flatten_config(job.config_params)
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                logger.warning("etude: %s: parameters not indexed (%s)", job.name, exc)
                params = {}
            self._written.add(job.id)
        state = snapshot.state
        return JobRecord(
            folder=folder,
            id=job.id,
            task=job.type_name,
            state=state,
            reason=snapshot.reason if state == ERROR else None,
            message=snapshot.message if state == ERROR else None,
            submitted=job.submitted_at,
            started=snapshot.started if state in (RUNNING, DONE, ERROR) else None,
            ended=snapshot.ended if state in (DONE, ERROR) else None,
            retries=attempts_before(job.dir),
            launcher=job.launcher.describe().get("launcher"),
            cluster_job_id=snapshot.cluster_job_id,
            # as the folder says: the experiment that launched the latest attempt (None keeps
            # what the index has, e.g. for a failure adopted from another experiment)
            experiment=self.experiment if snapshot.launched else None,
            tags={k: _plain(v) for k, v in job.tags.items()},
            params=params,
        )

    def _give_up(self, exc: BaseException) -> None:
        if self._failed:
            return
        self._failed = True
        logger.warning(
            "etude: cannot write the index of %s (%s: %s); the experiment goes on and its job "
            "folders are complete. Once the index works again, run `etude index rebuild -w %s`.",
            self.workspace.path,
            type(exc).__name__,
            exc,
            self.workspace.path,
        )


def _corrupt_sqlite(store: Store, exc: BaseException) -> bool:
    """Whether `exc` says the SQLite file is damaged (not merely busy)."""
    import sqlalchemy as sa  # loaded already: the store is open

    return (
        store.location.is_sqlite
        and isinstance(exc, sa.exc.DatabaseError)
        and not isinstance(exc, sa.exc.OperationalError)
    )


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


class Reporters:
    """Hands each job change to several reporters (the progress display, the index)."""

    def __init__(self, *reporters: Any) -> None:
        self.reporters = reporters

    def job_changed(self, job: Job) -> None:
        for reporter in self.reporters:
            reporter.job_changed(job)
