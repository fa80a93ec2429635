"""experimaestro's side of `make bench`: the same workloads as `etude_cases.py`.

    .venv-bench/bin/python benchmarks/xpm_cases.py identifiers 10000
    .venv-bench/bin/python benchmarks/xpm_cases.py tasks WORKSPACE 100
    .venv-bench/bin/python benchmarks/xpm_cases.py prepare WORKSPACE 10000    (not timed)
    .venv-bench/bin/python benchmarks/xpm_cases.py resubmit WORKSPACE 10000

Written against experimaestro 2.7.0 (installed by `benchmarks/run.py` into `.venv-bench`).
Job processes import this file again to find the task classes, hence the `__main__` guard.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from experimaestro import Config, DirtyGitAction, Param, Task, experiment


class Inner(Config):
    """The nested configuration of the identifier benchmark: three parameters."""

    width: Param[int]
    rate: Param[float]
    name: Param[str]


class Outer(Task):
    """A task holding one `Inner`."""

    inner: Param[Inner]

    def execute(self) -> None:
        pass


class Trivial(Task):
    """A task that does nothing: what is measured is the scheduler and job start-up."""

    index: Param[int]

    def execute(self) -> None:
        pass


def identifiers(count: int) -> dict[str, object]:
    # `__identifier__()` is experimaestro's public way to get a configuration's identity;
    # `.all` is the digest that names the job folder (what etude's identifier() is).
    start = time.perf_counter()
    ids = [
        Outer.C(inner=Inner.C(width=i, rate=i * 0.5, name=f"n{i}")).__identifier__().all.hex()
        for i in range(count)
    ]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "distinct": len(set(ids))}


def _open(workspace: Path) -> experiment:
    # Without no_environmental_impact, 2.7.0 sleeps 3 s on a banner when CodeCarbon is
    # missing; dirty_git=IGNORE skips the git check of the calling script's folder.
    return experiment(
        workspace, "bench", no_environmental_impact=True, dirty_git=DirtyGitAction.IGNORE
    )


def _job_folder(workspace: Path, task: Trivial) -> tuple[Path, str]:
    """Where 2.7.0 puts the job of `task` and the stem of its files (scheduler/jobs.py).

    `WORKSPACE/jobs/<type identifier>/<identifier.all hex>/`, files named after the last
    component of the type identifier.
    """
    type_id = str(type(task).__xpmtype__.identifier)
    folder = workspace / "jobs" / type_id / task.__identifier__().all.hex()
    return folder, type_id.rsplit(".", 1)[-1]


def tasks(workspace: Path, count: int) -> dict[str, object]:
    start = time.perf_counter()
    with _open(workspace):
        submitted = [Trivial.C(index=i) for i in range(count)]
        for task in submitted:
            task.submit()
    seconds = time.perf_counter() - start
    # A job that really ran leaves its stdout file; a reused one does not.
    ran = 0
    for task in submitted:
        folder, stem = _job_folder(workspace, task)
        ran += (folder / f"{stem}.out").exists()
    return {"seconds": seconds, "jobs": count, "reused": count - ran}


def prepare(workspace: Path, count: int) -> dict[str, object]:
    """Make `count` Trivial jobs look completed without running 10,000 processes.

    2.7.0 treats a job as done when `<job folder>/<stem>.done` exists
    (`JobState.from_path`, read by `Job.load_from_disk`), so we write that marker for each
    identifier, as etude_cases.py does with etude's own marker.
    """
    for i in range(count):
        folder, stem = _job_folder(workspace, Trivial.C(index=i))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.done").touch()
    return {"prepared": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=["identifiers", "tasks", "prepare", "resubmit"])
    parser.add_argument("args", nargs="+")
    ns = parser.parse_args()
    if ns.case == "identifiers":
        result = identifiers(int(ns.args[0]))
    else:
        workspace, count = Path(ns.args[0]), int(ns.args[1])
        result = {"tasks": tasks, "prepare": prepare, "resubmit": tasks}[ns.case](workspace, count)
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
