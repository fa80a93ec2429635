"""The index writer process: `python -m etude.store.writer WORKSPACE EXPERIMENT STARTED [URL]`.

An experiment starts one and sends it, on its standard input, one JSON line per batch of
events (see `etude.scheduler.index`); this process turns them into index writes. Running it
apart keeps SQLAlchemy's import and every database round trip off the experiment's
interpreter (and its GIL): submitting 10,000 jobs is not slowed by indexing them. When its
input ends (the experiment ended, or died), it writes what it received and exits. After the
run's end is written it prints `ended` on its standard output: the experiment waits for that
line, not for this process to exit.

Events, each a JSON list:
- `["run", JOBS]`: the run started (or listed JOBS jobs so far);
- `["end", JOBS, COUNTS, ENDED, OUTCOME]`: the run ended with COUNTS jobs per state, and
  OUTCOME (`completed`, `failed` or `interrupted`);
- `["job", FOLDER, ID, TASK, STATE, REASON, MESSAGE, SUBMITTED, STARTED, ENDED, LAUNCHED,
  CLUSTER_JOB_ID, LAUNCHER]`: a job's state; LAUNCHED says this experiment started the
  current attempt;
- `["use", FOLDER, TASK, DONE]`: a job the experiment uses but does not run (done before, or
  run by another experiment): it is linked to the experiment, and read from its folder when
  the index does not know it, or holds it as not done while it is DONE (a late write of the
  experiment that ran it, killed before it could say the job ended).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from ..workspace import CorruptFileError, JobDir, Workspace, read_json
from ..workspace.layout import short_name
from .records import JobRecord, Value, attempts_before, flatten_config, read_job_folder

logger = logging.getLogger("etude.store")

NICENESS = 10
JOB_FIELDS = (
    "folder", "id", "task", "state", "reason", "message", "submitted", "started", "ended",
    "launched", "cluster_job_id", "launcher",
)


class IndexFeed:
    """Applies batches of an experiment's events to its workspace's index."""

    def __init__(self, workspace: Workspace, experiment: str, started: float, url: str | None):
        self.workspace = workspace
        self.experiment = experiment
        self.started = started
        self.url = url
        self.store: Any = None
        self.failed = False
        self.written: set[str] = set()  # jobs whose parameters were sent to the index

    def open(self) -> None:
        from .open import open_store

        try:
            self.store = open_store(self.workspace, self.url)
        except Exception as exc:  # the experiment goes on without an index
            self.give_up(exc)

    def apply(self, batch: list[list[Any]], *, again: bool = True) -> None:
        if self.store is None or self.failed:
            return
        try:
            self._apply(batch)
        except Exception as exc:
            if not (again and self._corrupt(exc)):
                self.give_up(exc)
                return
            from .open import recover  # moves the damaged file aside, rebuilds from folders

            try:
                self.store.take_over(recover(self.workspace, self.store.location, str(exc)))
            except Exception as failure:
                self.give_up(failure)
                return
            self.written.clear()
            self.apply(batch, again=False)

    def _apply(self, batch: list[list[Any]]) -> None:
        jobs: dict[str, dict[str, Any]] = {}
        used: dict[str, tuple[str, bool]] = {}
        for event in batch:
            if event[0] == "job":
                job = dict(zip(JOB_FIELDS, event[1:], strict=True))
                jobs[job["folder"]] = job
                used.pop(job["folder"], None)
            elif event[0] == "use":
                used[event[1]] = (event[2], bool(event[3:4] and event[3]))
                jobs.pop(event[1], None)
            elif event[0] == "run":
                self._write_run(event[1], None, None, None)
        if jobs or used:
            self._write_jobs(list(jobs.values()), used)
        for event in batch:
            if event[0] == "end":
                self._write_run(event[1], event[2], event[3], (event[4:5] or [None])[0])

    def _write_run(self, jobs: int, counts: dict[str, int] | None, ended: float | None,
                   outcome: str | None) -> None:
        import os
        import socket

        import psutil

        self.store.write_experiment_run(
            self.experiment,
            started=self.started,
            ended=ended,
            host=socket.gethostname(),
            pid=os.getppid(),
            create_time=psutil.Process(os.getppid()).create_time(),
            jobs_count=jobs,
            counts=counts,
            outcome=outcome,
        )

    def _write_jobs(self, jobs: list[dict[str, Any]], used: dict[str, tuple[str, bool]]) -> None:
        records = [self._record(job) for job in jobs]
        if used:
            known = self.store.states_of(list(used))
            for folder, (task, done) in used.items():
                state = known.get(folder)
                if state is None or (done and state != "done"):
                    records.append(read_job_folder(self.workspace, self._dir(folder, task)))
        self.store.write_jobs(records, experiment=self.experiment, link=list(used))

    def _dir(self, folder: str, task: str) -> JobDir:
        return JobDir(self.workspace.path / folder, short_name(task))

    def _record(self, job: dict[str, Any]) -> JobRecord:
        folder = self._dir(job["folder"], job["task"])
        params: dict[str, Value] | None = None
        tags: dict[str, Any] = {}
        if job["folder"] not in self.written:
            problems: list[str] = []
            params, tags = read_params(folder, problems)
            for problem in problems:
                logger.warning("etude: %s", problem)
            self.written.add(job["folder"])
        state = job["state"]
        return JobRecord(
            folder=job["folder"],
            id=job["id"],
            task=job["task"],
            state=state,
            reason=job["reason"] if state == "error" else None,
            message=job["message"] if state == "error" else None,
            submitted=job["submitted"],
            started=job["started"] if state in ("running", "done", "error") else None,
            ended=job["ended"] if state in ("done", "error") else None,
            retries=attempts_before(folder),
            launcher=job["launcher"],
            cluster_job_id=job["cluster_job_id"],
            # the folder's answer: who launched the latest attempt (None keeps the index's)
            experiment=self.experiment if job["launched"] else None,
            tags=tags,
            params=params,
        )

    def _corrupt(self, exc: BaseException) -> bool:
        import sqlalchemy as sa

        return (
            self.store.location.is_sqlite
            and isinstance(exc, sa.exc.DatabaseError)
            and not isinstance(exc, sa.exc.OperationalError)
        )

    def give_up(self, exc: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        logger.warning(
            "etude: cannot write the index of %s (%s: %s); the experiment goes on and its job "
            "folders are complete. Once the index works again, run `etude index rebuild -w %s`.",
            self.workspace.path,
            type(exc).__name__,
            exc,
            self.workspace.path,
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def read_params(job: JobDir, problems: list[str]) -> tuple[dict[str, Value], dict[str, Any]]:
    """The flattened parameters and the tags of `job`, from its `params.json`."""
    try:
        meta = read_json(job.params)
        params = flatten_config(meta["config"])
    except FileNotFoundError:
        problems.append(f"{job.params}: missing")
        return {}, {}
    except (CorruptFileError, KeyError, IndexError, TypeError, ValueError) as exc:
        problems.append(f"{job.params}: parameters not indexed ({exc})")
        return {}, {}
    tags = meta.get("tags")
    return params, tags if isinstance(tags, dict) else {}


def batches(stream: Any) -> Iterator[list[list[Any]]]:
    """The batches read from `stream`, one JSON list per line; a torn last line (the
    experiment was killed while writing it) is skipped."""
    for line in stream:
        try:
            batch = json.loads(line)
        except ValueError:
            logger.warning("etude: index writer: skipping an incomplete batch")
            continue
        if isinstance(batch, list):
            yield batch


def main(argv: list[str]) -> int:
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    # Below the experiment and its jobs: on a busy machine the index waits, not the work.
    os.nice(NICENESS)
    workspace, experiment, started = Workspace(argv[0]), argv[1], float(argv[2])
    feed = IndexFeed(workspace, experiment, started, argv[3] if len(argv) > 3 else None)
    feed.open()
    try:
        for batch in batches(sys.stdin.buffer):
            feed.apply(batch)  # after a failure, the rest is read and dropped: never block
            if any(event[0] == "end" for event in batch):
                sys.stdout.write("ended\n")  # the experiment waits for this, not for our exit
                sys.stdout.flush()
    finally:
        feed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
