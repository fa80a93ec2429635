"""Retrying a failed task job from the UI: its configuration is submitted again in its
experiment, by a process of its own, so the server never imports the user's code.

`start()` (in the server, from a worker thread) checks the job and starts, detached,

    python -m etude.web.retry WORKSPACE FOLDER EXPERIMENT

whose output (the experiment's progress) goes to the job's `.etude/retry.log`; the job itself
writes its usual `NAME.out` / `NAME.err`. That process rebuilds the task from the job's
`.etude/params.json` (`etude.tracking.job_clone.thaw`) and submits it in
`experiment(WORKSPACE, EXPERIMENT)`: same configuration, same identifier and folder, and a
failed job is run again by a new submit. The tasks of its configuration that were its
dependencies are submitted first, so it waits for them again (done ones are reused, failed
ones run again).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from ..workspace import read_json
from ..workspace.layout import ETUDE_DIR
from .source import Conflict, NotFound, Source

LOG_NAME = "retry.log"


class Retries:
    """The retry processes one server started (one app has one), so that a job is not
    retried twice at once."""

    def __init__(self) -> None:
        self._started: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def start(self, source: Source, folder: str) -> dict[str, Any]:
        """Start the retry of the failed task job at `folder`: {"started", "pid", "log",
        "message"}. Raises NotFound for an unknown folder, Conflict for an infra job, a job
        that has not failed, one whose configuration is unreadable, or one already being
        retried."""
        path = source.job_folder(folder)
        experiment = _check(source, folder, path)
        log = path / ETUDE_DIR / LOG_NAME
        with self._lock:
            running = self._started.get(folder)
            if running is not None and running.poll() is None:
                raise Conflict(f"job {folder} is already being retried (process "
                               f"{running.pid}).")
            with open(log, "ab") as output:
                process = subprocess.Popen(
                    [sys.executable, "-m", "etude.web.retry", str(source.root), folder,
                     experiment],
                    cwd=source.root, stdin=subprocess.DEVNULL, stdout=output,
                    stderr=subprocess.STDOUT, start_new_session=True)
            self._started[folder] = process
        # Reap it when it ends (no zombie), without holding a request.
        threading.Thread(target=process.wait, daemon=True, name=f"retry {process.pid}").start()
        source.invalidate()
        return {"started": True, "pid": process.pid, "log": str(log.relative_to(source.root)),
                "message": f"resubmitted in experiment {experiment}; progress in "
                           f"{ETUDE_DIR}/{LOG_NAME}"}


def _check(source: Source, folder: str, path: Path) -> str:
    """The experiment to retry the job in, if it is a failed task job with a readable
    configuration; else Conflict (NotFound when the index lost it)."""
    from .job_data import quote

    rows = source.fresh().query_jobs(f"folder = {quote(folder)}", limit=1)
    if not rows:
        raise NotFound(f"no job folder {folder!r} in the index")
    row = rows[0]
    if row.kind != "task":
        raise Conflict(f"job {folder} is a pydantic-infra job: it cannot be retried from the "
                       "UI. Call its infra method again from its script.")
    if row.state != "error":
        raise Conflict(f"job {folder} is {row.state}: only a failed job (state error) is "
                       "retried.")
    try:
        params = read_json(path / ETUDE_DIR / "params.json")
    except (OSError, ValueError) as error:
        raise Conflict(f"job {folder}: its configuration cannot be read ({error}); it "
                       "cannot be retried.") from error
    if not isinstance(params, dict) or "config" not in params:
        raise Conflict(f"job {folder}: no configuration in its params.json; it cannot be "
                       "retried.")
    return str(params.get("experiment") or row.experiment or "retry")


def main(argv: list[str]) -> int:
    """Submit the job at FOLDER again in EXPERIMENT of WORKSPACE; 0 when it ends done."""
    from ..scheduler.entry import experiment
    from ..scheduler.experiment_context import ExperimentFailed
    from ..tracking.job_clone import dependency_tasks, submit_again, thaw

    if len(argv) != 3:
        print("usage: python -m etude.web.retry WORKSPACE FOLDER EXPERIMENT", file=sys.stderr)
        return 2
    workspace, folder, name = argv
    params = read_json(Path(workspace) / folder / ETUDE_DIR / "params.json")
    task = thaw(params["config"])
    dependencies = set(params.get("dependencies") or ())
    found = dependency_tasks(task, dependencies)
    missing = _not_done(Path(workspace), dependencies - set(found))
    if missing:
        print(f"not retried: dependencies {', '.join(missing)} are not done and are not tasks "
              "of its configuration (outputs of other tasks); rerun the experiment's script.",
              flush=True)
        return 1
    print(f"retrying {folder} in experiment {name} (pid {os.getpid()})", flush=True)
    try:
        with experiment(workspace, name):
            submit_again(task, found)
    except ExperimentFailed as failed:
        print(f"the retry failed: {failed}", flush=True)
        return 1
    print("the retry is done", flush=True)
    return 0


def _not_done(workspace: Path, keys: set[str]) -> list[str]:
    """The identifiers among `keys` whose job folder is not done."""
    from ..workspace import JobDir, read_status

    missing = []
    for key in sorted(keys):
        folders = list((workspace / "jobs").glob(f"*/{key}"))
        if not folders or read_status(JobDir(folders[0], folders[0].parent.name)).state != "done":
            missing.append(key[:12])
    return missing


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
