"""Bad input is refused at submit(), with the parameter path and the fix, before any job runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import xp_tasks as t

from etude import Meta, Param, PathGenerator, Task, experiment, field
from etude.config import (
    ConfigError,
    CycleError,
    MissingParameterError,
    PathGeneratorError,
    SealedError,
    SerializationError,
    UnknownParameterError,
    ValidationError,
)


def no_jobs(workspace: Path) -> bool:
    jobs = workspace / "jobs"
    return not jobs.exists() or not any(jobs.iterdir())


def test_missing_required_value_names_its_full_path(workspace: Path):
    with pytest.raises(MissingParameterError, match=r"UsesHolder\.holder\.inner\.hidden"):
        with experiment(workspace, "xp"):
            t.UsesHolder.C(holder=t.Holder.C(inner=t.Inner.C())).submit()
    assert no_jobs(workspace)


def test_wrong_type_and_unknown_name_fail_when_set():
    with pytest.raises(
        ValidationError, match=r"Inner\.hidden: expected int, got '64' \(str\)\. Pass hidden=64"
    ):
        t.Inner.C(hidden="64")
    with pytest.raises(UnknownParameterError, match="Did you mean 'hidden'"):
        t.Inner.C(hiden=3)


def test_setting_a_value_after_submit_raises(workspace: Path, tmp_path: Path):
    with experiment(workspace, "xp"):
        model = t.Model.C()
        t.Learn.C(model=model, lr=0.1, log=tmp_path / "log").submit()
        with pytest.raises(SealedError, match=r"Model\.hidden: the configuration was submitted"):
            model.hidden = 3


def test_unserializable_value_is_refused_before_any_job(workspace: Path):
    with pytest.raises(SerializationError, match=r"UsesHolder\.anything: a value of type object"):
        with experiment(workspace, "xp"):
            t.UsesHolder.C(holder=t.Holder.C(inner=t.Inner.C(hidden=1)), anything=object()).submit()
    assert no_jobs(workspace)


def test_dependency_cycle_is_refused(workspace: Path):
    first = t.Holder.C(inner=t.Inner.C(hidden=1))
    second = t.Holder.C(inner=t.Inner.C(hidden=2), child=first)
    first.child = second
    with pytest.raises(CycleError, match=r"UsesHolder\.holder\.child\.child"):
        with experiment(workspace, "xp"):
            t.UsesHolder.C(holder=first).submit()
    assert no_jobs(workspace)


def test_class_the_job_cannot_import_is_refused(workspace: Path):
    class Local(Task):
        x: Param[int] = 1

        def execute(self) -> None:
            pass

    with pytest.raises(SerializationError, match="defined inside a function"):
        with experiment(workspace, "xp"):
            Local.C().submit()
    assert no_jobs(workspace)


def test_generated_path_outside_a_task_raises():
    learn = t.Learn.C(model=t.Model.C(), lr=0.1, log=Path("log"))
    with pytest.raises(PathGeneratorError, match=r"Learn\.weights is a generated path"):
        _ = learn.weights


def test_submit_outside_an_experiment_raises():
    with pytest.raises(
        ConfigError, match=r"outside an experiment.*with experiment\(workdir, name\)"
    ):
        t.Learn.C(model=t.Model.C(), lr=0.1, log=Path("log")).submit()


def test_init_tasks_must_be_lightweight(workspace: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="init tasks must be LightweightTask"):
        with experiment(workspace, "xp"):
            t.Learn.C(model=t.Model.C(), lr=0.1, log=tmp_path / "l").submit(
                init_tasks=[t.Model.C()]
            )


class Prep(Task):
    n: Param[int]
    data: Meta[Path] = field(default_factory=PathGenerator("data.txt"))


class Use(Task):
    prep: Param[Prep]
    more: Param[list[Prep]] = []


def test_unsubmitted_task_as_a_value_is_refused_with_the_fix(workspace: Path):
    """It would never run, and its generated paths would point inside Use's folder."""
    with pytest.raises(ConfigError, match=r"Use\.prep: this Prep task was never submitted"):
        with experiment(workspace, "xp"):
            Use.C(prep=Prep.C(n=3)).submit()
    assert no_jobs(workspace)
    with pytest.raises(ConfigError, match=r"Use\.more\[1\]: .* Submit it first") as info:
        with experiment(workspace, "xp", dry_run=True):
            Use.C(prep=Prep.C(n=1).submit(), more=[Prep.C(n=2).submit(), Prep.C(n=4)]).submit()
    assert "x = Prep.C(...).submit()" in str(info.value)


def test_submitted_task_as_a_value_is_a_dependency(workspace: Path):
    with experiment(workspace, "xp", dry_run=True) as xp:
        prep = Prep.C(n=3).submit()
        Use.C(prep=prep).submit()
    assert prep.data.parent == xp.jobs[0].dir.path
    assert [job.task for job in xp.jobs[1].dependencies] == [prep]
