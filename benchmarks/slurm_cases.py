"""Slurm side of `make bench`: submit-to-done of trivial jobs, as job arrays or one by one.

    python benchmarks/slurm_cases.py array WORKSPACE 200      (one sbatch call for all)
    python benchmarks/slurm_cases.py single WORKSPACE 200     (one sbatch call per job)

Needs a Slurm cluster that answers (`make slurm-up` starts the test cluster). Prints one
`BENCH {json}` line. The task class lives at module level because the job processes load this
file again to find it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from etude import Param, Task, experiment
from etude.launchers import SlurmLauncher


class Trivial(Task):
    """A task that does nothing: what is measured is submission, Slurm and job start-up."""

    index: Param[int]

    def execute(self) -> None:
        pass


def run(workspace: Path, count: int, array: bool) -> dict[str, object]:
    launcher = SlurmLauncher(
        time=10, poll_interval=(0.5, 2.0), max_array_size=1000 if array else 1
    )
    start = time.perf_counter()
    with experiment(workspace, "bench", launcher=launcher) as xp:
        for i in range(count):
            Trivial.C(index=i).submit()
    seconds = time.perf_counter() - start
    arrays = workspace / "slurm-arrays"
    calls = len(list(arrays.iterdir())) if arrays.exists() else 0
    singles = sum(1 for job in xp.jobs if "_" not in _slurm_id(job.path))
    return {"seconds": seconds, "jobs": len(xp.jobs), "sbatch_calls": calls + singles}


def _slurm_id(folder: Path) -> str:
    return str(json.loads((folder / ".etude" / "process.json").read_text())["slurm_job_id"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["array", "single"])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    result = run(args.workspace, args.count, args.mode == "array")
    print("BENCH " + json.dumps({"case": f"slurm-{args.mode}", **result}))
