"""The writer thread of live runs: one per process, serving each run the process records,
and a fresh one in a forked child."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from etude.tracking import Run, process
from etude.tracking.points import read_points
from polling import wait_until

from .conftest import QUIET

# Every test here runs on SQLite and on PostgreSQL (the index the runs are ingested into).
pytestmark = pytest.mark.usefixtures("store_env")


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "etude-run-writer" and t.is_alive()]


def _written(run: Run) -> dict[str, dict[str, tuple[object, object, object]]]:
    """The points a reader finds in the folder (not through the live run, which would flush)."""
    return read_points(run._folder.scalars)


def test_one_writer_thread_writes_every_run_of_the_process(ws: Path) -> None:
    for i in range(3):
        with Run.init(project="p", name=f"r{i}", workspace=ws, **QUIET) as run:
            run.logger.report_scalar("loss", "train", value=float(i), iteration=0)
    run = Run.init(project="p", name="open", workspace=ws, **QUIET)
    run.logger.report_scalar("loss", "train", value=0.5, iteration=7)
    # Written by the thread within a flush period or two, with the run still open.
    points = wait_until(lambda: _written(run).get("loss"), "the open run's points on disk", 10)
    assert list(points["train"][0]) == [7]
    assert len(_writer_threads()) == 1
    run.close()
    assert Run.get(run.id, workspace=ws).state == "completed"


def test_a_forked_child_gets_its_own_writer_thread(ws: Path) -> None:
    """The parent's thread does not exist in a child made by fork: the child's runs must
    still be written while they are open (here, up to a SIGKILL that allows no close)."""
    with Run.init(project="p", name="parent", workspace=ws, **QUIET) as run:
        run.logger.report_scalar("loss", "train", value=1.0, iteration=0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: record, wait for the thread to write, then die without closing
        try:
            os.close(read)
            child = Run.init(project="p", name="child", workspace=ws, **QUIET)
            child.logger.report_scalar("loss", "train", value=2.0, iteration=3)
            os.write(write, child.id.encode())
            deadline = time.monotonic() + 20
            while not (_written(child).get("loss") and child._folder.exists()
                       and time.monotonic() < deadline):
                time.sleep(0.05)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        child_id = stream.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    points = read_points(Run.get(child_id, workspace=ws)._folder.scalars)
    assert list(points["loss"]["train"][0]) == [3]
    assert list(points["loss"]["train"][1]) == [2.0]


def test_a_forked_child_never_writes_the_run_it_inherits(ws: Path) -> None:
    """A worker made by fork (a data loader) holds a copy of the parent's live run: even when
    the parent's writer looks late to it, the child writes nothing of that run."""
    run = Run.init(project="p", name="shared", workspace=ws, **QUIET)
    run.logger.report_scalar("loss", "train", value=1.0, iteration=0)  # still buffered
    run._live.recorder.due = 0.0  # what a starved writer thread looks like
    pid = os.fork()
    if pid == 0:
        try:
            run.logger.report_scalar("loss", "train", value=9.0, iteration=99)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    run.close()
    points = _written(run)["loss"]["train"]
    assert list(points[0]) == [0] and list(points[1]) == [1.0]


@pytest.mark.parametrize("ending", ["exit", "exception", "sigterm"])
def test_a_forked_child_that_ends_leaves_the_parents_run_running(ws: Path, ending: str) -> None:
    """A worker made by fork inherits the parent's atexit, excepthook and SIGTERM handler: its
    end (a normal exit, an uncaught exception, the SIGTERM a pool sends its workers) must not
    close the parent's run."""
    run = Run.init(project="p", name="parent", workspace=ws, **QUIET)
    run.reload()  # its first files written now: what the child could do to them shows
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if ending == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # killed before this ends
                code = 3
            elif ending == "exception":
                code = 1
                process._excepthook(RuntimeError, RuntimeError("worker"), None)
            else:
                process._at_exit()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if ending == "sigterm":
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert run._folder.read_status()["state"] == "running"
    run.close()
    assert Run.get(run.id, workspace=ws).state == "completed"


def test_a_failing_check_does_not_stop_the_writer_thread(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread is shared by every run of the process: an error in one run's periodic
    check is logged, and the thread goes on writing."""
    run = Run.init(project="p", name="broken", workspace=ws, **QUIET)

    def broken() -> None:
        raise OSError("the abort request cannot be checked")

    monkeypatch.setattr(run._live.recorder, "_check_abort", broken)
    run.logger.report_scalar("loss", "train", value=1.0, iteration=0)
    time.sleep(3 * run._live.recorder.flush_seconds)  # a few failing ticks
    run.close()
    later = Run.init(project="p", name="later", workspace=ws, **QUIET)
    later.logger.report_scalar("loss", "train", value=2.0, iteration=5)
    points = wait_until(lambda: _written(later).get("loss"), "the thread to write", 10)
    assert list(points["train"][0]) == [5]
    later.close()
