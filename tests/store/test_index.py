"""The index of a workspace, written by real experiments, on SQLite and PostgreSQL: what goes
in, rebuild from the folders, reconciliation of changes made behind the index's back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from etude.store import Store, check, open_store, rebuild, refresh
from etude.store.records import JobRecord
from etude.workspace import Workspace

SCRIPT = """
import sys
from etude import Config, Param, Task, experiment, tag

class Model(Config):
    hidden: Param[int] = 64
    act: Param[str] = "relu"

class Learn(Task):
    model: Param[Model]
    lr: Param[float]
    layers: Param[list[int]] = [1, 2]
    flag: Param[bool] = False

    def execute(self):
        if self.lr > 0.5:
            raise ValueError("too big")

if __name__ == "__main__":
    name = sys.argv[2] if len(sys.argv) > 2 else "xp"
    try:
        with experiment(sys.argv[1], name):
            for lr in (0.1, 0.01, 0.9):
                Learn.C(model=Model.C(hidden=tag(128)), lr=lr, flag=lr < 0.05).submit()
    except Exception as exc:
        print("failed:", exc)
"""


def run_xp(tmp_path: Path, workspace: Path, env: dict[str, str], name: str = "xp") -> None:
    script = tmp_path / "learn.py"
    script.write_text(textwrap.dedent(SCRIPT))
    result = subprocess.run(
        [sys.executable, str(script), str(workspace), name],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert "failed: 1 job(s) failed" in result.stdout, result.stdout + result.stderr
    assert "cannot write the index" not in result.stderr, result.stderr
    assert "locked" not in result.stderr, result.stderr


def by_lr(store: Store) -> dict[float, dict]:
    found = {}
    for row in store.query_jobs():
        params = store.job_params(row.pk)
        found[params["lr"]] = {**row.__dict__, "params": params}
    return found


def test_experiment_writes_its_jobs_params_tags_and_run(tmp_path, workspace, store, store_env):
    run_xp(tmp_path, workspace, store_env)
    jobs = by_lr(store)
    assert set(jobs) == {0.1, 0.01, 0.9}
    done, failed = jobs[0.1], jobs[0.9]
    assert (done["task"], done["state"], done["reason"]) == ("learn.Learn", "done", None)
    assert (failed["state"], failed["reason"], failed["message"]) == (
        "error",
        "error",
        "ValueError: too big",
    )
    assert done["params"] == {
        "lr": 0.1,
        "model": "learn.Model",
        "model.hidden": 128,
        "model.act": "relu",
        "layers": [1, 2],
        "flag": False,
    }
    assert jobs[0.01]["params"]["flag"] is True
    assert done["tags"] == {"hidden": 128}
    assert done["experiment"] == "xp" and done["launcher"] == "direct"
    assert done["submitted"] <= done["started"] <= done["ended"]
    assert done["duration"] == done["ended"] - done["started"]
    assert (workspace / done["folder"] / ".etude" / "done.json").exists()
    [info] = store.experiments()
    assert info.name == "xp" and info.states == {"done": 2, "error": 1}
    [run] = info.runs
    assert run.jobs == 3 and run.counts == {"done": 2, "error": 1}
    assert run.started < run.ended and run.pid is not None


def test_a_second_experiment_reusing_the_jobs_is_linked_and_counted(
    tmp_path, workspace, store, store_env
):
    run_xp(tmp_path, workspace, store_env, "first")
    run_xp(tmp_path, workspace, store_env, "second")
    infos = {info.name: info for info in store.experiments()}
    assert set(infos) == {"first", "second"}
    assert infos["second"].states == {"done": 2, "error": 1}
    assert len(store.query_jobs()) == 3
    # the failed job ran again in "second"; the done ones stay "first"'s
    assert {row.experiment for row in store.query_jobs()} == {"first", "second"}


def snapshot(store: Store) -> dict:
    jobs = {
        row.folder: (row.id, row.task, row.state, row.reason, row.kind, row.tags,
                     row.experiment, store.job_params(row.pk), row.started)
        for row in store.query_jobs()
    }
    experiments = {
        info.name: (info.states, [(r.started, r.ended, r.jobs, r.counts) for r in info.runs])
        for info in store.experiments()
    }
    return {"jobs": jobs, "experiments": experiments}


def test_rebuild_gives_the_same_answers(tmp_path, workspace, store, store_env):
    run_xp(tmp_path, workspace, store_env, "first")
    run_xp(tmp_path, workspace, store_env, "second")
    before = snapshot(store)
    assert rebuild(store) == 3
    assert snapshot(store) == before
    assert not check(store)


def test_refresh_drops_deleted_folders_and_reads_new_ones(tmp_path, workspace, store, store_env):
    run_xp(tmp_path, workspace, store_env)
    refresh(store)
    victim = store.query_jobs()[0]
    shutil.rmtree(workspace / victim.folder)
    orphan = workspace / "jobs" / "learn.learn" / ("f" * 64)
    orphan.mkdir()
    changes = refresh(store)
    assert changes.removed == [victim.folder]
    assert changes.added == [orphan.relative_to(workspace).as_posix()]
    rows = {row.id: row for row in store.query_jobs()}
    assert victim.id not in rows
    assert rows["f" * 64].state == "unscheduled"
    assert "params.json: missing" in rows["f" * 64].problems[0]


def test_refresh_reads_again_a_job_the_index_holds_as_running(
    tmp_path, workspace, store, store_env
):
    """A job that ended where the index did not see it (a Slurm node) is read again."""
    run_xp(tmp_path, workspace, store_env)
    refresh(store)
    row = next(r for r in store.query_jobs() if r.state == "done")
    stale = JobRecord(folder=row.folder, id=row.id, task=row.task, state="running")
    store.write_jobs([stale])
    assert refresh(store).updated == [(row.folder, "running", "done")]
    assert next(r for r in store.query_jobs() if r.folder == row.folder).state == "done"


def test_check_reports_and_repairs_what_refresh_does_not_see(
    tmp_path, workspace, store, store_env
):
    run_xp(tmp_path, workspace, store_env)
    refresh(store)
    row = next(r for r in store.query_jobs() if r.state == "done")
    (workspace / row.folder / ".etude" / "done.json").write_text('{"star')  # truncated
    changes = check(store, repair=False)
    assert changes.updated == [(row.folder, "state=done", "state=error")]  # killed?
    assert any("done.json" in problem for problem in changes.problems)
    check(store)
    assert not check(store)


def test_index_is_scoped_to_its_workspace(tmp_path, store_env, store_url):
    """Two workspaces sharing one database (a team's PostgreSQL) see their own jobs only."""
    one, two = tmp_path / "one", tmp_path / "two"
    run_xp(tmp_path, one, store_env)
    with open_store(one) as first, open_store(two) as second:
        assert len(first.query_jobs()) == 3
        assert second.query_jobs() == [] and second.experiments() == []


def test_rebuild_restores_every_run_of_an_experiment(tmp_path, workspace, store, store_env):
    run_xp(tmp_path, workspace, store_env)
    run_xp(tmp_path, workspace, store_env)
    history = (Workspace(workspace).experiments / "xp" / "runs.jsonl").read_text().splitlines()
    assert len(history) == 2 and json.loads(history[1])["counts"] == {"done": 2, "error": 1}
    store.clear()
    assert store.experiments() == []
    rebuild(store)
    [info] = store.experiments()
    assert len(info.runs) == 2 and info.states == {"done": 2, "error": 1}
