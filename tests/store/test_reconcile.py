"""Reconciliation on hand-made folders: which folders are listed, what refresh reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from etude.store import Store, refresh
from etude.store.reconcile import _entry_folder, _job_dirs, containers
from etude.store.records import JobRecord, relative_folder
from etude.workspace import Workspace

TASK_ID = "ab" * 32


def job_folder(folder: Path, **markers: object) -> Path:
    """A job folder with params.json and the given markers (`done={...}`: done.json)."""
    (folder / ".etude").mkdir(parents=True)
    (folder / ".etude" / "params.json").write_text(json.dumps({"type": "xp.Learn"}))
    for name, value in markers.items():
        (folder / ".etude" / f"{name}.json").write_text(json.dumps(value))
    return folder


def a_workspace_of_every_kind(root: Path) -> None:
    """Task jobs, pydantic-infra uid and chunk folders, and what is none of them."""
    for task, job in [("xp.learn", "b1"), ("xp.learn", "a2"), ("xp.eval", "c3")]:
        job_folder(root / "jobs" / task / job)
    (root / "jobs" / "xp.learn" / "notes.txt").write_text("not a job")
    (root / "jobs" / "README").write_text("not a task")
    (root / "jobs" / "xp.empty").mkdir()
    (root / "jobs" / "xp.eval" / "half-made").mkdir()  # listed: every folder under jobs/TASK
    job_folder(root / "xp.Model.apply,1" / "uid2")
    job_folder(root / "xp.Model.apply,1" / "uid1")
    (root / "xp.Model.apply,1" / "uid3").mkdir()  # no .etude: not a job
    job_folder(root / "xp.Model.map,1" / "uid4" / "jobs" / "10-19")
    job_folder(root / "xp.Model.map,1" / "uid4" / "jobs" / "0-9")
    (root / "xp.Model.map,1" / "uid4" / "jobs" / "20-29").mkdir()  # no .etude: not a job
    job_folder(root / "xp.Model.map,1" / "uid5")  # has jobs/: a MapInfra cache, not a job
    job_folder(root / "xp.Model.map,1" / "uid5" / "jobs" / "0-9")
    (root / "a,b.txt").write_text("a file, not an infra folder")
    job_folder(root / "experiments" / "xp")  # not a job folder of any kind


def test_rebuild_lists_the_folders_of_iter_job_dirs_in_its_order(workspace: Path):
    a_workspace_of_every_kind(workspace)
    ws = Workspace(workspace)
    expected = [(str(job.path), job.name) for job in ws.iter_job_dirs()]
    assert [(str(job.path), job.name) for job in _job_dirs(ws)] == expected
    assert len(expected) == 9


def test_containers_are_the_folders_that_hold_job_folders(workspace: Path):
    a_workspace_of_every_kind(workspace)
    assert sorted(containers(Workspace(workspace))) == [
        ".",
        "jobs",
        "jobs/xp.empty",
        "jobs/xp.eval",
        "jobs/xp.learn",
        "xp.Model.apply,1",
        "xp.Model.map,1",
        "xp.Model.map,1/uid4/jobs",
        "xp.Model.map,1/uid5/jobs",
    ]


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"id": TASK_ID, "task": "xp.Learn"}, id="task-and-id"),
        pytest.param({"id": ".", "task": "xp.Learn"}, id="id-dot"),
        pytest.param({"id": "a/b", "task": "xp.Learn"}, id="id-with-slash"),
        pytest.param({"id": "x", "task": "/abs"}, id="absolute-task"),
        pytest.param({"id": "..", "task": "xp.Learn"}, id="id-dot-dot"),
    ],
)
def test_a_run_entry_names_the_folder_job_dir_gives(workspace: Path, entry: dict[str, str]):
    ws = Workspace(workspace)
    expected = relative_folder(ws, ws.job_dir(entry["task"], entry["id"]))
    assert _entry_folder(ws, entry) == expected


def test_a_deleted_running_job_is_removed_once(workspace: Path, store: Store):
    """Listed again (its task folder changed) and read again (running): one removal."""
    folder = f"jobs/xp.learn/{TASK_ID}"
    job_folder(workspace / folder)
    assert refresh(store).added == [folder]
    store.write_jobs([JobRecord(folder=folder, id=TASK_ID, task="xp.Learn", state="running")])
    shutil.rmtree(workspace / folder)
    changes = refresh(store)
    assert (changes.removed, changes.added, changes.updated) == ([folder], [], [])
    assert store.query_jobs() == []


def test_a_failed_job_done_elsewhere_is_read_again(workspace: Path, store: Store):
    folder = f"jobs/xp.learn/{TASK_ID}"
    job_folder(workspace / folder, failed={"reason": "error", "message": "boom"})
    assert refresh(store).added == [folder]
    assert not refresh(store)
    (workspace / folder / ".etude" / "done.json").write_text(json.dumps({"ended": 2.0}))
    assert refresh(store).updated == [(folder, "error", "done")]
    [row] = store.query_jobs()
    assert (row.state, row.ended) == ("done", 2.0)


def test_a_waiting_job_gets_its_pending_reason_and_its_changes(workspace: Path, store: Store):
    """An experiment indexes a Slurm job as waiting before squeue says why it waits; the
    reader that asks Slurm records the reason, and a new one when it changes."""
    folder = f"jobs/xp.learn/{TASK_ID}"
    job_folder(workspace / folder, process={"launcher": "slurm", "slurm_job_id": "41"})
    store.write_jobs([JobRecord(folder=folder, id=TASK_ID, task="xp.Learn", state="waiting")])
    store.set_scanned({path: mtime for path, mtime in containers(Workspace(workspace)).items()})
    reason = "BeginTime"

    def pending(record: dict[str, object]) -> tuple[str, str]:
        return ("PENDING", reason)

    assert refresh(store, pending).updated == [(folder, "waiting", "waiting")]
    [row] = store.query_jobs()
    assert (row.state, row.message, row.cluster_job_id) == ("waiting", "queued (BeginTime)", "41")
    assert not refresh(store, pending)  # nothing new: nothing written
    reason = "Priority"
    refresh(store, pending)
    assert store.query_jobs()[0].message == "queued (Priority)"


def test_a_new_job_among_many_is_the_only_one_read(workspace: Path, store: Store):
    for i in range(50):
        job_folder(workspace / "jobs" / "xp.learn" / f"{i:02d}", done={})
    assert len(refresh(store).added) == 50
    job_folder(workspace / "jobs" / "xp.learn" / "new")
    changes = refresh(store)
    assert (changes.added, changes.removed, changes.updated) == (["jobs/xp.learn/new"], [], [])
    assert sum(store.count_jobs().values()) == 51
