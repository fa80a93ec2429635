"""InstanceConfig in experiments: equal instances make distinct jobs, run again they are reused."""

from __future__ import annotations

import json
from pathlib import Path

import xp_tasks as t

from etude import experiment, identifier
from etude.tracking.job_clone import thaw
from etude.workspace import read_json

SCRIPT = """
import json, sys
from pathlib import Path

from etude import InstanceConfig, Param, Task, experiment, identifier


class Weights(InstanceConfig):
    size: Param[int] = 4


class Ensemble(Task):
    first: Param[Weights]
    second: Param[Weights]

    def execute(self):
        # In the job process: the objects as they were in the script, and the same identifier.
        report = {"shared": self.first is self.second, "id": identifier(self)}
        Path("report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    with experiment(sys.argv[1], "ensembles") as xp:
        one, two = Weights.C(), Weights.C()
        Ensemble.C(first=one, second=two).submit()
        Ensemble.C(first=one, second=one).submit()
        Ensemble.C(first=two, second=two).submit()  # the same job as the one above
    print(json.dumps([[job.id, job.reused] for job in xp.jobs]))
"""


def test_equal_instances_make_two_jobs_that_a_second_run_reuses(run_script, workspace: Path):
    first = json.loads(run_script(SCRIPT, str(workspace)).stdout)
    assert [reused for _, reused in first] == [False, False]
    separate, shared = (workspace / "jobs" / "xp.ensemble" / job_id for job_id, _ in first)
    for folder, was_shared in ((separate, False), (shared, True)):
        report = json.loads((folder / "report.json").read_text())
        assert report == {"shared": was_shared, "id": folder.name}
        # Thawed from params.json (a job clone, the UI's retry): the same objects and id.
        task = thaw(read_json(folder / ".etude" / "params.json")["config"])
        assert (task.first is task.second) == was_shared and identifier(task) == folder.name

    again = json.loads(run_script(SCRIPT, str(workspace)).stdout)  # a new process
    assert again == [[job_id, True] for job_id, _ in first]


def test_separate_tasks_each_with_one_instance_are_one_job(workspace: Path, tmp_path: Path):
    """Each task's identifier is computed within its own graph, where the instance is alone."""
    log = tmp_path / "log"
    with experiment(workspace, "xp", dry_run=True) as xp:
        t.Learn.C(model=t.Seeded.C(), lr=0.1, log=log).submit()
        t.Learn.C(model=t.Seeded.C(), lr=0.1, log=log).submit()
    assert len(xp.jobs) == 1


def test_an_output_and_the_value_next_to_it_count_as_one_object_or_two(
    workspace: Path, tmp_path: Path
):
    """Evaluating the model an init task loads the weights into, or an equal one, differs."""
    log = tmp_path / "log"
    with experiment(workspace, "xp", dry_run=True) as xp:
        model = t.Seeded.C()
        loader = t.LearnAndLoad.C(model=model, lr=0.5, log=log).submit()
        same = t.EvaluateModel.C(model=model, log=log)
        same.submit(init_tasks=[loader])
        other = t.EvaluateModel.C(model=t.Seeded.C(), log=log)
        other.submit(init_tasks=[loader])
    assert len(xp.jobs) == 3 and identifier(same) != identifier(other)
