"""Experiments run real job processes: dependencies, reuse, failures, hooks, callbacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xp_tasks as t

from etude import ExperimentFailed, experiment, identifier, tag
from etude.launchers import DirectLauncher
from etude.workspace import Workspace, read_status


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_dependency_runs_after_and_init_task_loads_shared_model(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with experiment(workspace, "xp") as xp:
        model = t.Model.C(hidden=8)
        loader = t.LearnAndLoad.C(model=model, lr=0.5, log=log).submit()
        evaluation = t.EvaluateModel.C(model=model, log=log)
        evaluation.submit(init_tasks=[loader])
    assert lines(log) == ["learn 0.5", "evaluate 5.0"]
    assert (evaluation.jobpath / "result.txt").read_text() == "5.0"
    assert [j.state for j in xp.jobs] == ["done", "done"]


def test_wrapped_output_depends_on_the_task(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with experiment(workspace, "xp"):
        outs = [t.LearnWrapped.C(model=t.Model.C(), lr=lr, log=log).submit() for lr in (1.0, 2.0)]
        evals = [t.EvaluateWeights.C(weights=o, log=log) for o in outs]
        for e in evals:
            e.submit()
        # The wrapped outputs differ only through their producing task.
        assert identifier(evals[0]) != identifier(evals[1])
    assert sorted(lines(log)) == sorted(
        ["learn 1.0", "learn 2.0", "evaluate-wrapped 10.0", "evaluate-wrapped 20.0"]
    )


def test_second_run_reuses_done_jobs(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    for _ in range(2):
        with experiment(workspace, "xp") as xp:
            t.Learn.C(model=t.Model.C(), lr=0.1, log=log).submit()
    assert lines(log) == ["learn 0.1"]
    assert xp.jobs[0].reused


def test_same_config_twice_in_one_experiment_is_one_job(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with experiment(workspace, "xp") as xp:
        t.Learn.C(model=t.Model.C(), lr=0.1, log=log).submit()
        t.Learn.C(model=t.Model.C(), lr=0.1, log=log).submit()
    assert len(xp.jobs) == 1
    assert lines(log) == ["learn 0.1"]


def test_failure_is_reported_and_dependents_do_not_run(workspace: Path, tmp_path: Path):
    log, flag = tmp_path / "log", tmp_path / "flag"
    flag.touch()
    with pytest.raises(ExperimentFailed) as failed, experiment(workspace, "xp"):
        flaky = t.Flaky.C(name="a", flag=flag, log=log)
        flaky.submit()
        after = t.After.C(before=flaky, log=log)
        after.submit()
    message = str(failed.value)
    assert "flaky" in message and "after" in message and "dependency" in message
    assert lines(log) == ["flaky a"]
    record = json.loads((flaky.jobpath / ".etude" / "failed.json").read_text())
    assert record["reason"] == "error"
    assert "flag" in record["message"] and "RuntimeError" in record["traceback"]
    assert "RuntimeError" in (flaky.jobpath / "flaky.err").read_text()
    dependent = read_status(Workspace(workspace).find_job(identifier(after)))
    assert (dependent.state, dependent.reason) == ("error", "dependency")


def test_rerun_retries_failed_jobs_and_keeps_history(workspace: Path, tmp_path: Path):
    log, flag = tmp_path / "log", tmp_path / "flag"
    flag.touch()
    with pytest.raises(ExperimentFailed), experiment(workspace, "xp"):
        flaky = t.Flaky.C(name="a", flag=flag, log=log)
        flaky.submit()
        t.After.C(before=flaky, log=log).submit()
    flag.unlink()
    with experiment(workspace, "xp") as xp:
        flaky = t.Flaky.C(name="a", flag=flag, log=log)
        flaky.submit()
        t.After.C(before=flaky, log=log).submit()
    assert lines(log) == ["flaky a", "flaky a", "after"]
    assert all(j.state == "done" and not j.reused for j in xp.jobs)
    history = list((flaky.jobpath / ".etude" / "history").iterdir())
    assert any(p.name.endswith("failed.json") for p in history)


def test_runtime_context_env_tags_and_hooks(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ETUDE_TEST_VAR", "from-experiment")
    with experiment(workspace, "xp"):
        task = t.Inspect.C(x=tag(3), label="seen")
        task.submit()
    facts = json.loads((task.jobpath / "facts.json").read_text())
    assert facts["cwd"] == str(task.jobpath) == facts["taskdir"] == facts["jobpath"]
    assert facts["tags"] == {"x": 3}
    assert facts["env"] == "from-experiment"
    assert task.jobpath == Workspace(workspace).jobs / "xp_tasks.inspect" / identifier(task)


def test_submit_hook_sets_environment_once_per_spec(workspace: Path):
    t.needs_var.calls.clear()
    with experiment(workspace, "xp"):
        task = t.Index.C(collection=t.Collection.C(), other=t.OtherCollection.C())
        task.submit()
    assert t.needs_var.calls == ["java-11"]
    assert (task.jobpath / "hook.txt").read_text() == "java-11"


def test_on_completed_callback_can_submit_more_tasks(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    seen: list[str] = []
    with experiment(workspace, "xp") as xp:
        learn = t.Learn.C(model=t.Model.C(), lr=3.0, log=log)
        learn.submit()

        def then() -> None:
            seen.append("called")
            t.After.C(before=learn, log=log).submit()

        learn.on_completed(then)
    assert seen == ["called"]
    assert lines(log) == ["learn 3.0", "after"]
    assert len(xp.jobs) == 2


def test_cache_computes_once_under_the_workspace(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with experiment(workspace, "xp"):
        terms = t.Terms.C(n=3)
        first = t.UseTerms.C(terms=terms, log=log)
        first.submit()
        t.UseTerms.C(terms=terms, log=log).submit()  # same identity: one job
        other = t.UseTerms.C(terms=t.Terms.C(n=3), log=tmp_path / "other-log")
        other.submit()
    assert lines(log) == ["compute 3"]
    cached = Workspace(workspace).cache / "xp_tasks.terms" / identifier(terms) / "terms.txt"
    assert cached.read_text() == "ttt"


def test_max_jobs_bounds_parallel_jobs(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with experiment(workspace, "xp", launcher=DirectLauncher(max_jobs=1)):
        for name in "abc":
            t.Slow.C(name=name, seconds=0.2, log=log).submit()
    events = sorted((float(line.split()[2]), line.split()[0]) for line in lines(log))
    depth = 0
    for _, kind in events:
        depth += 1 if kind == "start" else -1
        assert depth <= 1


def test_killed_job_is_recorded_with_reason_killed(workspace: Path):
    with pytest.raises(ExperimentFailed, match="killed"), experiment(workspace, "xp"):
        task = t.SelfKill.C()
        task.submit()
    status = read_status(Workspace(workspace).find_job(identifier(task)))
    assert (status.state, status.reason) == ("error", "killed")
    record = json.loads((task.jobpath / ".etude" / "failed.json").read_text())
    assert record["exit_status"] == -9


def test_job_script_runs_by_hand_under_the_job_lock(workspace: Path, tmp_path: Path):
    import subprocess
    import sys

    from etude.workspace import FileLock

    log, flag = tmp_path / "log", tmp_path / "flag"
    flag.touch()
    with pytest.raises(ExperimentFailed), experiment(workspace, "xp"):
        flaky = t.Flaky.C(name="a", flag=flag, log=log)
        flaky.submit()
    script = flaky.jobpath / "flaky.py"
    held = FileLock(flaky.jobpath / ".etude" / "lock")
    assert held.try_acquire()
    busy = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    held.release()
    assert busy.returncode == 75 and "running in another process" in busy.stderr
    flag.unlink()
    by_hand = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert by_hand.returncode == 0, by_hand.stderr
    assert read_status(Workspace(workspace).find_job(identifier(flaky))).state == "done"


def test_nested_task_outputs_depend_on_the_task_only_where_marked(workspace: Path, tmp_path: Path):
    """Seed 000's RandomFold: sampled topics depend on the fold, documents do not."""
    (tmp_path / "topics.tsv").write_text("a\nb\nc\nd\n")
    source = t.Dataset.C(
        documents=t.Documents.C(path=tmp_path / "docs.tsv"),
        topics=t.Topics.C(path=tmp_path / "topics.tsv"),
    )
    with experiment(workspace, "xp") as xp:
        folds = [t.RandomFold.C(dataset=source, seed=s).submit() for s in (0, 1)]
        counts = [t.CountTopics.C(dataset=fold) for fold in folds]
        for count in counts:
            count.submit()
        assert identifier(folds[0].topics) != identifier(folds[1].topics)
        assert identifier(folds[0].documents) == identifier(source.documents)
        assert [d.task for d in xp.jobs[2].dependencies] == [xp.jobs[0].task]
    assert [(c.jobpath / "count.txt").read_text() for c in counts] == ["2 docs.tsv"] * 2


def test_shared_type_name_makes_equal_configurations_one_job(workspace: Path, tmp_path: Path):
    """Two classes declaring the same `__etude_name__`: equal values are the same job, so the
    result of one is reused for the other, and the folder is named by the shared name."""
    log = tmp_path / "log"
    with experiment(workspace, "xp"):
        v1 = t.TrainV1.C(lr=0.1, log=log)
        v1.submit()
    with experiment(workspace, "xp") as xp:
        same = t.TrainV2.C(lr=0.1, log=log)
        same.submit()
        t.TrainV2.C(lr=0.1, warmup=5, log=log).submit()
    assert identifier(same) == identifier(v1) and same.jobpath == v1.jobpath
    assert v1.jobpath.parent.name == "xp_tasks.sharedtrain"
    assert [job.reused for job in xp.jobs] == [True, False]
    assert lines(log) == ["v1 0.1", "v2 0.1 5"]


def test_the_heap_is_frozen_only_while_an_experiment_runs(workspace: Path, tmp_path: Path):
    """Objects older than the experiment are left out of the collector's full passes while it
    runs (many submissions), and given back at its end, even when it fails or cannot start:
    a cycle dropped meanwhile is collected afterwards."""
    import gc
    import weakref

    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # type: ignore[attr-defined]
    gone = weakref.ref(cycle)
    frozen_before = gc.get_freeze_count()
    with experiment(workspace, "xp"):
        assert gc.get_freeze_count() > frozen_before
        with experiment(workspace, "inner"):
            pass
        assert gc.get_freeze_count() > 0  # the outer one still runs
        del cycle
        gc.collect()
        assert gone() is not None  # frozen: left alone
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None
    with pytest.raises(RuntimeError), experiment(workspace, "xp"):
        raise RuntimeError("the script failed")
    assert gc.get_freeze_count() == 0
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(OSError), experiment(blocked, "xp"):
        pass
    assert gc.get_freeze_count() == 0
