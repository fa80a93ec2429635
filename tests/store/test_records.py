"""Reading a job folder into a record: the state agrees with `read_status` on every kind of
folder (the record reads it from one listing of `.etude/`), and the other fields come from
the markers present."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from etude.store.records import (
    AskLauncher,
    read_folder_status,
    read_job_folder,
    relative_folder,
)
from etude.workspace import FileLock, JobDir, JobStatus, Workspace, read_status
from etude.workspace.layout import INFRA_JOB_NAME

HOST = socket.gethostname()
ALIVE = {"pid": os.getpid(), "host": HOST, "create_time": psutil.Process().create_time()}
GONE = {"pid": os.getpid(), "host": HOST, "create_time": 1.0}  # that pid, another process
ELSEWHERE = {"pid": 1, "host": "node-17.invalid"}  # another machine: assumed alive
PARAMS = {"type": "xp.Learn", "tags": {"model": "cnn"}, "config": None}
INFRA_PARAMS = {"type": "xp.Model.apply,1", "infra": {"folder": "."}, "tags": {}}
OLD_FAILURE = {"reason": "error", "message": "old", "ended": 5.0}
DIRECTORY = object()  # a marker that is a folder, not a file
LOOP = object()  # a marker that is a symbolic link to itself

Files = dict[str, Any]  # name in .etude/ -> JSON value, raw text or bytes, DIRECTORY, LOOP


def make_job(root: Path, files: Files, where: str = "task") -> JobDir:
    """A job folder of the workspace `root` holding `files` in `.etude/`, at `where`: a task's
    folder, a pydantic infra's uid folder, or a MapInfra chunk's folder."""
    ws = Workspace(root)
    if where == "task":
        job = ws.job_dir("xp.Learn", "ab" * 32)
    elif where == "infra":
        job = JobDir(ws.path / "xp.Model.apply,1" / ("cd" * 16), INFRA_JOB_NAME)
    else:
        job = JobDir(ws.path / "xp.Model.map,1" / ("ef" * 16) / "jobs" / "0-99", INFRA_JOB_NAME)
    if where != "task":
        files = {"params.json": INFRA_PARAMS, **files}
    job.meta.mkdir(parents=True)
    for name, value in files.items():
        path = job.meta / name
        if value is DIRECTORY:
            path.mkdir()
        elif value is LOOP:
            path.symlink_to(name)
        elif isinstance(value, bytes):
            path.write_bytes(value)
        else:
            path.write_text(value if isinstance(value, str) else json.dumps(value))
    return job


@pytest.fixture
def held() -> Iterator[list[FileLock]]:
    """Locks to release after the test (a test adds the lock it takes, as a job process)."""
    locks: list[FileLock] = []
    yield locks
    for lock in locks:
        lock.release()


def hold_lock(job: JobDir, held: list[FileLock]) -> None:
    lock = FileLock(job.lock)
    assert lock.try_acquire()
    held.append(lock)


def as_tuple(status: JobStatus) -> tuple[Any, ...]:
    return (status.state, status.reason, status.message, status.pid, status.problems)


def case(state: str, files: Files, name: str, *, locked: bool = False, where: str = "task") -> Any:
    """A row of FOLDERS: `files` in a folder at `where`, its lock held or not, read as `state`."""
    return pytest.param(files, locked, where, state, id=name)


DONE, FAILED, PROCESS, SCHEDULED = "done.json", "failed.json", "process.json", "scheduled.json"
FOLDERS = [
    case("unscheduled", {}, "no-markers-no-params"),
    case("unscheduled", {"params.json": PARAMS}, "params-only"),
    case("done", {DONE: {"ended": 2.0}}, "done"),
    case("done", {DONE: {}, FAILED: OLD_FAILURE}, "done-wins-over-failed"),
    case("unscheduled", {DONE: '{"star'}, "done-truncated"),
    case("unscheduled", {DONE: "[1, 2]"}, "done-not-an-object"),
    case("unscheduled", {DONE: b"\xff\xfe\x00{"}, "done-garbage-bytes"),
    case("unscheduled", {DONE: DIRECTORY}, "done-is-a-folder"),
    case("unscheduled", {DONE: LOOP, SCHEDULED: LOOP}, "markers-are-link-loops"),
    case("error", {DONE: "", FAILED: OLD_FAILURE}, "done-empty-then-failed"),
    case("error", {FAILED: {"reason": "timeout", "message": "4h"}}, "failed-timeout"),
    case("error", {FAILED: {"reason": 3}}, "failed-reason-not-text"),
    case("error", {FAILED: "nul", PROCESS: GONE}, "failed-corrupt-then-killed"),
    case("error", {PROCESS: GONE, SCHEDULED: ALIVE}, "killed"),
    case("error", {PROCESS: GONE, "lock": ""}, "killed-lock-file-left"),
    case("waiting", {PROCESS: "{", SCHEDULED: ALIVE}, "process-corrupt-submitter-alive"),
    case("waiting", {SCHEDULED: ALIVE}, "waiting"),
    case("waiting", {SCHEDULED: ELSEWHERE}, "waiting-on-another-host"),
    case("unscheduled", {SCHEDULED: GONE}, "submitter-gone"),
    case("unscheduled", {SCHEDULED: {"host": HOST}}, "submitter-without-pid"),
    case("unscheduled", {SCHEDULED: "]"}, "scheduled-corrupt"),
    case("running", {PROCESS: ALIVE}, "running", locked=True),
    case("running", {PROCESS: ALIVE, FAILED: OLD_FAILURE}, "running-after-a-failure", locked=True),
    case("running", {PROCESS: "{"}, "running-process-corrupt", locked=True),
    case("running", {}, "running-no-process-yet", locked=True),
    case("done", {DONE: {}, PROCESS: ALIVE}, "running-but-done", locked=True),
    case("running", {DONE: "{", PROCESS: ALIVE}, "running-done-corrupt", locked=True),
    case("done", {DONE: {}}, "infra-done", where="infra"),
    case("running", {PROCESS: ALIVE}, "infra-running", locked=True, where="infra"),
    case("error", {FAILED: OLD_FAILURE}, "mapinfra-chunk-failed", where="chunk"),
    case("unscheduled", {SCHEDULED: GONE}, "mapinfra-chunk-unscheduled", where="chunk"),
]


@pytest.mark.parametrize(("files", "locked", "where", "state"), FOLDERS)
def test_state_agrees_with_read_status(
    tmp_path: Path, held: list[FileLock], files: Files, locked: bool, where: str, state: str
):
    """State, reason, message, pid and problems (same words) are read_status's."""
    job = make_job(tmp_path, files, where)
    if locked:
        hold_lock(job, held)
    expected = read_status(job)
    assert expected.state == state  # the table says what it covers
    assert as_tuple(read_folder_status(str(job.path))) == as_tuple(expected)
    record = read_job_folder(Workspace(tmp_path), job)
    assert (record.state, record.reason, record.message) == (
        expected.state,
        expected.reason,
        expected.message or None,
    )
    assert record.kind == ("task" if where == "task" else "infra")
    assert record.problems[len(record.problems) - len(expected.problems) :] == expected.problems


def pending(record: dict[str, Any]) -> tuple[str, str] | None:
    return ("PENDING", "Priority") if record.get("slurm_job_id") == "41" else None


def started(record: dict[str, Any]) -> tuple[str, str] | None:
    return ("RUNNING", "") if record.get("slurm_job_id") == "41" else None


QUEUED = {"launcher": "slurm", "slurm_job_id": "41"}


@pytest.mark.parametrize(
    ("files", "ask", "state"),
    [
        pytest.param({PROCESS: QUEUED}, pending, "waiting", id="queued"),
        pytest.param({PROCESS: QUEUED}, started, "running", id="started-on-its-node"),
        pytest.param({PROCESS: {**QUEUED, "slurm_job_id": "7"}}, pending, "error", id="unknown"),
        pytest.param({PROCESS: QUEUED, FAILED: OLD_FAILURE}, pending, "error", id="failed-first"),
    ],
)
def test_state_from_the_launcher_agrees_with_read_status(
    tmp_path: Path, files: Files, ask: AskLauncher, state: str
):
    job = make_job(tmp_path, files)
    expected = read_status(job, ask)
    assert expected.state == state
    assert as_tuple(read_folder_status(str(job.path), ask)) == as_tuple(expected)
    assert read_job_folder(Workspace(tmp_path), job, ask).state == state


def test_a_folder_that_cannot_be_listed_is_read_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """When `.etude/` cannot be listed, every marker is looked for by name, as read_status
    does (it reports what it meets)."""
    job = make_job(tmp_path, {"params.json": PARAMS, "failed.json": OLD_FAILURE})
    expected = read_status(job)

    def refuse(path: Any) -> list[str]:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "listdir", refuse)
    record = read_job_folder(Workspace(tmp_path), job)
    assert (record.state, record.reason, record.ended) == (expected.state, "error", 5.0)
    assert record.task == "xp.Learn" and record.problems == []


def test_a_done_job_gives_every_field(tmp_path: Path):
    config = {
        "root": 0,
        "objects": [{"class": {"module": "xp", "qualname": "Learn"}, "fields": {"lr": 0.1}}],
    }
    process = {
        **ALIVE,
        "started": 10.0,
        "launcher": "slurm",
        "slurm_job_id": "12",
        "experiment": "sweep",
    }
    job = make_job(
        tmp_path,
        {
            "params.json": {**PARAMS, "config": config},
            "scheduled.json": {**GONE, "submitted": 3.0},
            "process.json": process,
            "done.json": {"started": 11.0, "ended": 15.0},
        },
    )
    record = read_job_folder(Workspace(tmp_path), job)
    assert record.folder == f"jobs/xp.learn/{'ab' * 32}"
    assert (record.id, record.task, record.kind, record.state) == (
        "ab" * 32,
        "xp.Learn",
        "task",
        "done",
    )
    assert (record.submitted, record.started, record.ended, record.duration) == (
        3.0,
        10.0,
        15.0,
        5.0,
    )
    assert (record.launcher, record.cluster_job_id, record.experiment) == ("slurm", "12", "sweep")
    assert record.retries == 0 and record.tags == {"model": "cnn"} and record.problems == []
    assert record.params == {"lr": ("float", 0.1, "0.1")}


def test_archived_attempts_give_retries_and_the_launching_experiment(tmp_path: Path):
    """Without process.json, the experiment is the latest readable archived record's."""
    job = make_job(tmp_path, {"params.json": PARAMS, "scheduled.json": GONE})
    job.history.mkdir()
    (job.history / "1-process.json").write_text(json.dumps({"experiment": "first"}))
    (job.history / "2-process.json").write_text(json.dumps({"experiment": "second"}))
    (job.history / "3-process.json").write_text("{")  # unreadable: skipped
    (job.history / "corrupt-9-done.json").write_text("{}")  # not an attempt
    record = read_job_folder(Workspace(tmp_path), job)
    assert (record.retries, record.experiment) == (3, "second")


def test_submitted_falls_back_to_the_params_file_time(tmp_path: Path):
    job = make_job(tmp_path, {"params.json": PARAMS, "scheduled.json": {**GONE, "submitted": 0}})
    os.utime(job.params, (1234.0, 1234.0))
    assert read_job_folder(Workspace(tmp_path), job).submitted == 1234.0
    job.params.unlink()
    assert read_job_folder(Workspace(tmp_path), job).submitted is None


def test_problems_list_the_params_file_first(tmp_path: Path):
    job = make_job(tmp_path, {"params.json": "{", "done.json": "[]", "failed.json": OLD_FAILURE})
    record = read_job_folder(Workspace(tmp_path), job)
    assert record.state == "error" and record.task == "xp.learn"  # the folder's name
    assert [problem.split(": ")[0] for problem in record.problems] == [
        str(job.params),
        str(job.done),
    ]


def test_missing_params_is_a_problem(tmp_path: Path):
    job = make_job(tmp_path, {"done.json": {}})
    [problem] = read_job_folder(Workspace(tmp_path), job).problems
    assert problem.startswith(f"{job.params}: missing")


@pytest.mark.parametrize("where", ["infra", "chunk"])
def test_infra_job_parameters_come_from_its_config(tmp_path: Path, where: str):
    """A MapInfra chunk's configuration is its uid folder's config.json."""
    job = make_job(tmp_path, {"params.json": INFRA_PARAMS, "done.json": {}}, where)
    uid = job.path if where == "infra" else job.path.parent.parent
    (uid / "config.json").write_text(json.dumps({"model": {"depth": 3}, "seed": 1}))
    record = read_job_folder(Workspace(tmp_path), job)
    assert (record.kind, record.task, record.state) == ("infra", "xp.Model.apply,1", "done")
    assert record.params == {"model.depth": ("int", 3.0, "3"), "seed": ("int", 1.0, "1")}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("ws/jobs/xp.learn/ab", "jobs/xp.learn/ab", id="inside"),
        pytest.param("ws", ".", id="the-workspace"),
        pytest.param("ws2/jobs/xp.learn/ab", "{tmp}/ws2/jobs/xp.learn/ab", id="beside"),
        pytest.param("other/ab", "{tmp}/other/ab", id="outside"),
    ],
)
def test_relative_folder(tmp_path: Path, path: str, expected: str):
    job = JobDir(tmp_path / path, "learn")
    assert relative_folder(Workspace(tmp_path / "ws"), job) == expected.format(tmp=tmp_path)
