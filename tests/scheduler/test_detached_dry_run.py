"""`submit(dry_run=WORKDIR)` outside an experiment: identifiers and paths, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import xp_tasks as t

from etude import ConfigError, experiment, identifier


def test_outside_an_experiment_a_dry_run_submit_gives_ids_and_paths(tmp_path: Path):
    workspace = tmp_path / "ws"
    log = tmp_path / "log"
    loader = t.LearnAndLoad.C(model=t.Model.C(), lr=0.5, log=log).submit(dry_run=workspace)
    evaluation = t.EvaluateModel.C(model=t.Model.C(), log=log)
    evaluation.submit(init_tasks=[loader], dry_run=workspace)
    assert evaluation.jobpath.parent.parent == workspace / "jobs"
    assert evaluation.jobpath.name == identifier(evaluation)
    assert not workspace.exists() and not log.exists()  # nothing written, nothing run

    # The same identifiers and folders as in an experiment.
    with experiment(workspace, "xp", dry_run=True) as xp:
        loader = t.LearnAndLoad.C(model=t.Model.C(), lr=0.5, log=log).submit()
        again = t.EvaluateModel.C(model=t.Model.C(), log=log)
        again.submit(init_tasks=[loader])
    assert again.jobpath == evaluation.jobpath
    assert [job.dependencies for job in xp.jobs][1] == [xp.jobs[0]]


def test_generated_paths_are_filled_by_a_dry_run_submit(tmp_path: Path):
    learn = t.Learn.C(model=t.Model.C(), lr=0.1, log=tmp_path / "log")
    learn.submit(dry_run=tmp_path / "ws")
    assert learn.weights == tmp_path / "ws" / "jobs" / learn.jobpath.parent.name / identifier(
        learn
    ) / "weights.txt"


def test_submit_outside_an_experiment_without_dry_run_says_how(tmp_path: Path):
    with pytest.raises(ConfigError, match="pass dry_run=WORKDIR"):
        t.Slow.C(name="a", log=tmp_path / "log").submit()


def test_dry_run_argument_inside_an_experiment_is_refused(tmp_path: Path):
    with experiment(tmp_path, "xp", dry_run=True):
        with pytest.raises(ConfigError, match="a dry run is the experiment's choice"):
            t.Slow.C(name="a", log=tmp_path / "log").submit(dry_run=True)
