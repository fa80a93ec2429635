"""`etude jobs rerun`: done jobs run again at their next submission (real workspaces and job
processes, made by running the demo experiment)."""

from __future__ import annotations

import json
from pathlib import Path

from etude.workspace import FileLock, Workspace

from .support import DEMO, job_ids, list_json, run_cli


def states(capsys, workspace: Path) -> dict[str, str]:
    ids = {job_id: key for key, job_id in job_ids(workspace).items()}
    return {ids[row["id"]]: row["state"] for row in list_json(capsys, workspace)}


def started(workspace: Path, job_id: str) -> float:
    job = Workspace(workspace).find_job(job_id)
    return json.loads(job.done.read_text())["started"]


def test_a_rerun_job_runs_again_at_the_next_run(demo, capsys, run_script):
    ids = job_ids(demo)
    before = {key: started(demo, ids[key]) for key in ("x0", "x1")}
    status, out, _ = run_cli(capsys, "jobs", "rerun", ids["x0"][:10], "-w", demo)
    assert status == 0
    assert f"Will run again: xp.hello/{ids['x0'][:12]}" in out
    assert "1 job(s) will run again" in out
    assert states(capsys, demo)["x0"] != "done", "the index follows the folder"
    history = Workspace(demo).find_job(ids["x0"]).history
    assert len(list(history.glob("*-done.json"))) == 1, "the done marker is kept aside"
    run_script(DEMO, str(demo))
    assert started(demo, ids["x0"]) > before["x0"], "x0 ran again"
    assert started(demo, ids["x1"]) == before["x1"], "x1 was reused"


def test_rerun_where_selects_jobs_with_the_filter(demo, capsys):
    status, out, _ = run_cli(
        capsys, "jobs", "rerun", "--where", "task = 'xp.Hello' and state = done", "-w", demo
    )
    assert status == 0, out
    assert "2 job(s) will run again" in out
    after = states(capsys, demo)
    assert after["x0"] != "done" and after["x1"] != "done", after
    assert (after["x2"], after["b"]) == ("error", "done"), "the others are untouched"


def test_rerun_of_a_job_that_is_not_done_says_so(demo, capsys):
    ids = job_ids(demo)
    status, out, _ = run_cli(capsys, "jobs", "rerun", ids["x2"][:10], "-w", demo)
    assert status == 0
    assert "Not done: xp.hello/" in out and "0 job(s) will run again" in out


def test_rerun_keeps_a_job_an_experiment_holds(demo, capsys):
    ids = job_ids(demo)
    lock = FileLock(Workspace(demo).find_job(ids["b"]).lock)
    assert lock.try_acquire()
    try:
        status, _, err = run_cli(capsys, "jobs", "rerun", ids["b"][:10], "-w", demo)
    finally:
        lock.release()
    assert status == 0 and "an experiment process holds its lock" in err
    assert states(capsys, demo)["b"] == "done"


def test_rerun_needs_jobs_or_a_filter(demo, capsys):
    status, _, err = run_cli(capsys, "jobs", "rerun", "-w", demo)
    assert status == 2 and "--where" in err
    status, _, err = run_cli(capsys, "jobs", "rerun", "--where", "stat = done", "-w", demo)
    assert status == 2 and "unknown field 'stat'" in err
