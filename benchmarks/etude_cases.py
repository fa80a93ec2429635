"""etude's side of `make bench`: one workload per call, one `BENCH {json}` line on stdout.

    python benchmarks/etude_cases.py identifiers 10000
    python benchmarks/etude_cases.py tasks WORKSPACE 100
    python benchmarks/etude_cases.py prepare WORKSPACE 10000    (not timed)
    python benchmarks/etude_cases.py resubmit WORKSPACE 10000

`benchmarks/run.py` calls it in a fresh interpreter for each measure. The task classes live at
module level because job processes load this file again to find them; the work itself runs
only under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from etude import Config, Param, Task, experiment, identifier


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
    start = time.perf_counter()
    ids = [
        identifier(Outer.C(inner=Inner.C(width=i, rate=i * 0.5, name=f"n{i}")))
        for i in range(count)
    ]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "distinct": len(set(ids))}


def tasks(workspace: Path, count: int) -> dict[str, object]:
    start = time.perf_counter()
    with experiment(workspace, "bench") as xp:
        for i in range(count):
            Trivial.C(index=i).submit()
    seconds = time.perf_counter() - start
    reused = sum(1 for job in xp.jobs if job.reused)
    return {"seconds": seconds, "jobs": len(xp.jobs), "reused": reused}


def prepare(workspace: Path, count: int) -> dict[str, object]:
    """Make `count` Trivial jobs look completed without running 10,000 processes.

    A job is done when `WORKSPACE/jobs/<type name>/<id>/.etude/done.json` exists (see
    `JobDir.is_done`), so we compute each identifier and write that marker, with the content
    the job runner would write. This uses etude's internal layout API on purpose: if the
    layout moves, this fails loudly instead of measuring jobs that run.
    """
    from etude.config import type_name
    from etude.workspace import Workspace

    ws = Workspace(workspace)
    name = type_name(Trivial)
    now = time.time()
    marker = json.dumps({"started": now, "ended": now})
    for i in range(count):
        folder = ws.job_dir(name, identifier(Trivial.C(index=i)))
        folder.meta.mkdir(parents=True, exist_ok=True)
        folder.done.write_text(marker)
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
