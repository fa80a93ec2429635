"""Job states read from folders: what a listing sees, whoever wrote the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from etude.workspace import FileLock, Workspace, read_status


def job_folder(tmp_path: Path):
    job = Workspace(tmp_path).job_dir("xp.Task", "cd" * 32)
    job.meta.mkdir(parents=True)
    job.params.write_text("{}")
    return job


def test_process_gone_without_marker_reads_as_killed(tmp_path: Path):
    job = job_folder(tmp_path)
    job.process.write_text(json.dumps({"pid": 999999, "host": os.uname().nodename}))
    status = read_status(job)
    assert (status.state, status.reason) == ("error", "killed")


def test_held_lock_reads_as_running_even_with_an_old_failure(tmp_path: Path):
    job = job_folder(tmp_path)
    job.failed.write_text(json.dumps({"reason": "error", "message": "old"}))
    job.process.write_text(json.dumps({"pid": os.getpid()}))
    lock = FileLock(job.lock)
    assert lock.try_acquire()
    try:
        status = read_status(job)
        assert (status.state, status.pid) == ("running", os.getpid())
    finally:
        lock.release()
    assert read_status(job).state == "error"


def test_submitted_by_a_dead_experiment_reads_as_unscheduled(tmp_path: Path):
    job = job_folder(tmp_path)
    job.scheduled.write_text(json.dumps({"pid": 999999, "host": os.uname().nodename}))
    assert read_status(job).state == "unscheduled"
