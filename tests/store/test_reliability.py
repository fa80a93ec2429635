"""The index stays true to the job folders when experiments are killed at any moment and when
several experiments write it at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from etude.store import Store, check, refresh
from etude.store.records import relative_folder
from etude.workspace import Workspace, is_locked, read_json, read_status
from polling import wait_until as wait_for

STEPS = 10

KILLED_SCRIPT = """
import sys, time
from etude import Param, Task, experiment
from etude.launchers import DirectLauncher

class Step(Task):
    n: Param[int]

    def execute(self):
        time.sleep(0.2)

if __name__ == "__main__":
    with experiment(sys.argv[1], "killed", launcher=DirectLauncher(max_jobs=2)):
        for n in range(int(sys.argv[2])):
            Step.C(n=n).submit()
"""

HANDOVER_SCRIPT = """
import sys, time
from pathlib import Path
from etude import Meta, Param, Task, experiment

class Held(Task):
    n: Param[int]
    sync: Meta[Path]

    def execute(self):
        (self.sync / "started").touch()
        deadline = time.monotonic() + 60
        while not (self.sync / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

if __name__ == "__main__":
    with experiment(sys.argv[1], sys.argv[2]):
        Held.C(n=1, sync=Path(sys.argv[3])).submit()
"""

SHARED_SCRIPT = """
import sys, time
from etude import Param, Task, experiment
from etude.launchers import DirectLauncher

class Step(Task):
    n: Param[int]

    def execute(self):
        time.sleep(0.1)

if __name__ == "__main__":
    first = int(sys.argv[3])
    with experiment(sys.argv[1], sys.argv[2], launcher=DirectLauncher(max_jobs=2)):
        for n in range(first, first + 10):
            Step.C(n=n).submit()
"""


def folder_states(workspace: Path) -> dict[str, str]:
    """folder (relative to the workspace) -> state, read from the job folders themselves."""
    ws = Workspace(workspace)
    return {relative_folder(ws, job): read_status(job).state for job in ws.iter_job_dirs()}


def index_states(store: Store) -> dict[str, str]:
    rows = store.query_jobs()
    folders = [row.folder for row in rows]
    assert len(folders) == len(set(folders)), f"a job is in the index twice: {sorted(folders)}"
    return {row.folder: row.state for row in rows}


def index_writers(workspace: Path) -> list[psutil.Process]:
    """The `etude.store.writer` processes still writing `workspace`'s index."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "etude.store.writer" in cmdline and str(workspace) in cmdline:
            found.append(process)
    return found


def script_file(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def run_count(store: Store) -> int:
    return sum(len(info.runs) for info in store.experiments())


def kill_at_random(script: Path, workspace: Path, store: Store, rng: random.Random) -> None:
    """Start the experiment and SIGKILL it at a random moment, mostly while it writes the index
    (its first batch comes a second or so after its start, when the jobs are already going)."""
    runs = run_count(store)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(workspace), str(STEPS)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    waited = rng.random() < 0.75
    if waited:
        wait_for(
            lambda: proc.poll() is not None or run_count(store) > runs,
            "the experiment to write its run to the index",
        )
    # when to kill, not a synchronisation
    time.sleep(rng.uniform(0.0, 0.5) if waited else rng.uniform(0.05, 0.8))
    proc.kill()
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_index_agrees_with_the_folders_after_the_experiment_is_killed(
    tmp_path: Path, workspace: Path, store: Store, seed: int
):
    """SIGKILL at random moments (mid-write, jobs running) loses nothing: the index reconciles
    to what the folders say, and a rerun completes with an agreeing index."""
    script = script_file(tmp_path, "killed.py", KILLED_SCRIPT)
    rng = random.Random(seed)
    for _ in range(rng.choice((1, 2))):
        kill_at_random(script, workspace, store, rng)
    # Job processes started by the killed experiment go on and hold their lock until they end.
    locks = [job.lock for job in Workspace(workspace).iter_job_dirs()]
    wait_for(lambda: not any(is_locked(lock) for lock in locks), "the orphaned jobs to end")
    # So does its index writer: it writes what it was sent (maybe "running"), then exits. A
    # refresh before that would be undone until the next one; here we check the settled index.
    wait_for(lambda: not index_writers(workspace), "the killed experiment's index writer")

    refresh(store)
    ghosts = [
        row.folder
        for row in store.query_jobs()
        if row.state == "running" and not is_locked(workspace / row.folder / ".etude" / "lock")
    ]
    assert ghosts == [], "shown running, but no process holds their lock"
    after_refresh = check(store, repair=False)
    assert not after_refresh, f"refresh left differences a listing would show: {after_refresh}"
    check(store, repair=True)
    assert not check(store, repair=False)
    assert index_states(store) == folder_states(workspace)

    final = subprocess.run(
        [sys.executable, str(script), str(workspace), str(STEPS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    states = index_states(store)  # as the experiment wrote it: no refresh first
    assert list(states.values()) == ["done"] * STEPS, states
    assert states == folder_states(workspace)
    assert not check(store, repair=False)
    [info] = store.experiments()
    assert info.last is not None and info.last.ended is not None
    assert info.last.counts == {"done": STEPS}


@pytest.mark.slow
def test_four_experiments_at_once_share_one_index(tmp_path: Path, workspace: Path, store: Store):
    """Concurrent writers neither lose nor duplicate jobs, and each experiment is linked to
    exactly the jobs it submitted, including those another experiment ran."""
    script = script_file(tmp_path, "shared.py", SHARED_SCRIPT)
    firsts = {f"xp{i}": 3 * i for i in range(4)}  # jobs n..n+9: neighbours share 7, all share 9
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(script), str(workspace), name, str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, first in firsts.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{out}\n{err}"
        said = err.replace(str(tmp_path), "TMP").lower()  # the path may contain "index"
        for word in ("locked", "index", "traceback"):
            assert word not in said, f"{name}'s stderr mentions {word!r}:\n{err}"

    states = index_states(store)
    assert states == folder_states(workspace)
    assert set(states.values()) == {"done"} and len(states) == 19, states
    infos = {info.name: info for info in store.experiments()}
    assert set(infos) == set(firsts)
    for name, first in firsts.items():
        info = infos[name]
        [run] = info.runs
        assert run.ended is not None and run.jobs == 10 and run.counts == {"done": 10}, run
        assert info.states == {"done": 10}
        linked = store.query_jobs(where=f'experiment = "{name}"')
        assert sorted(store.job_params(row.pk)["n"] for row in linked) == list(
            range(first, first + 10)
        ), name
    assert not check(store, repair=False)  # `etude index check` agrees (exit 0)


def test_a_job_submitted_again_while_it_runs_elsewhere_agrees_with_its_folder(
    tmp_path: Path, workspace: Path, store: Store
):
    """Experiment B submits the job experiment A is running: afterwards the index and the
    folder name the same experiment (A, which ran it), and the job is linked to both."""
    script = script_file(tmp_path, "handover.py", HANDOVER_SCRIPT)
    sync = tmp_path / "sync"
    sync.mkdir()

    def start(name: str) -> subprocess.Popen[str]:
        argv = [sys.executable, str(script), str(workspace), name, str(sync)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    first = start("A")
    try:
        wait_for((sync / "started").exists, "A's job to start")
        second = start("B")
        run_b = Workspace(workspace).experiments / "B" / "run.json"
        # B lists its jobs in run.json once it has submitted them, before waiting for them.
        wait_for(lambda: run_b.exists() and read_json(run_b)["jobs"] != [], "B's submission")
    finally:
        (sync / "go").touch()
    for name, proc in (("A", first), ("B", second)):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name} exited {proc.returncode}\n{out}\n{err}"

    [job] = Workspace(workspace).iter_job_dirs()
    [row] = store.query_jobs()
    assert row.state == "done"
    for name in ("A", "B"):
        assert [r.folder for r in store.query_jobs(where=f'experiment = "{name}"')] == [
            row.folder
        ], name
    # `experiment` is the one that launched the job's latest attempt, as its process.json says
    assert row.experiment == "A" == json.loads(job.process.read_text())["experiment"]
    assert not check(store, repair=False)
