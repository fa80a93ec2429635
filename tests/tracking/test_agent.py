"""Queues and agents with real processes: a run recorded by hand, cloned and edited, enqueued,
and run again by `etude agent` from its rebuilt code; seed 004's execute_remotely and function
runs; Run.create; failures an agent must survive; several agents on one queue; an agent
killed with SIGKILL or stopped with SIGTERM. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etude.tracking import Run, RunNotFoundError, RunStateError
from etude.tracking.query import close_indexes
from polling import wait_until

from .conftest import QUIET

ETUDE = [sys.executable, "-m", "etude.cli"]
DEADLINE_S = 90.0

TRAIN = """\
import argparse
from etude.tracking import Run

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=32)
args = parser.parse_args()
run = Run.init(project="agent", name="base", auto_resource_monitoring=False)
params = run.connect({"lr": 0.1, "epochs": 3})
model = run.connect_configuration({"layers": [64]}, name="model")
from helper import VALUE  # an uncommitted change of the repository
print(f"lr={params['lr']} batch={args.batch} layers={model['layers']} value={VALUE}")
for step in range(params["epochs"]):
    run.logger.report_scalar("loss", "train", value=params["lr"] * (step + 1), iteration=step)
"""


def wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    return wait_until(condition, what, timeout)


@pytest.fixture
def env(ws: Path, store_env: dict[str, str]) -> dict[str, str]:
    """What child processes (scripts, agents) get: this workspace, this store."""
    values = {**os.environ, **store_env, "ETUDE_WORKSPACE": str(ws)}
    values.pop("ETUDE_JOB_FOLDER", None)
    os.environ["ETUDE_WORKSPACE"] = str(ws)
    return values


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository holding train.py, with helper.py left uncommitted."""
    folder = tmp_path / "repo"
    folder.mkdir()
    git(folder, "init", "-q", "-b", "main")
    (folder / "train.py").write_text(TRAIN)
    git(folder, "add", "train.py")
    git(folder, "commit", "-q", "-m", "train")
    (folder / "helper.py").write_text("VALUE = 7\n")
    return folder


def run_script(path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(path), *args], cwd=path.parent, env=env,
                          capture_output=True, text=True, timeout=DEADLINE_S)
    return done


def agent(env: dict[str, str], *args: str, timeout: float = DEADLINE_S) -> str:
    done = subprocess.run([*ETUDE, "agent", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stderr


def start_agent(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*ETUDE, "agent", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def fresh(run: Run) -> Run:
    return run.reload()


# -- the workflow of seed 004 ---------------------------------------------------------------
def test_a_clone_edited_and_enqueued_runs_in_an_agent_with_the_edits(
        repo: Path, ws: Path, env: dict[str, str]) -> None:
    done = run_script(repo / "train.py", env, "--batch", "8")
    assert done.returncode == 0, done.stderr
    base = Run.get(project="agent", name="base", workspace=ws)
    assert base.state == "completed"

    draft = Run.clone(base, name="lr sweep 0.01")
    assert draft.state == "draft" and draft.parent == base.id
    assert draft.metrics == {} and draft.console() == ""  # outputs are not carried over
    draft.set_parameter("General/lr", 0.01)
    draft.set_parameter("Args/batch", 64)
    draft.set_parameter("General/epochs", 5)
    draft.remove_parameters(["General/epochs"])  # not set after all: the code's value again
    assert "General/epochs" not in fresh(draft).params
    with pytest.raises(ValueError, match="has no parameter General/nope"):
        draft.remove_parameters(["General/nope"])
    draft.set_configuration("model", {"layers": [128]})
    draft.enqueue("default")
    assert fresh(draft).state == "queued"
    (repo / "helper.py").unlink()  # the agent rebuilds the recorded state, not today's folder

    agent(env, "--queue", "default", "--once")
    ran = Run.get(draft.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    assert ran.params["General/lr"] == 0.01 and ran.params["Args/batch"] == 64
    assert ran.params["General/epochs"] == 3  # removed from the draft: the script's default
    assert ran.configuration["model"] == {"layers": [128]}
    assert "lr=0.01 batch=64 layers=[128] value=7" in ran.console()
    assert ran.metrics["loss"]["train"]["last"] == pytest.approx(0.03)
    assert ran.parent == base.id and ran.name == "lr sweep 0.01"
    assert Run.get(base.id, workspace=ws).metrics["loss"]["train"]["last"] == pytest.approx(0.3)
    assert Run.query(project="agent", state=["queued", "running"], workspace=ws) == []


def test_execute_remotely_stops_the_script_and_the_agent_goes_on_from_there(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "remote.py"
    script.write_text(textwrap.dedent("""\
        from etude.tracking import Run
        run = Run.init(project="agent", name="remote", auto_resource_monitoring=False)
        params = run.connect({"steps": 2})
        print("set up here")
        run.execute_remotely(queue="default")
        print("training with", params["steps"], "steps")
        run.logger.report_single_value("steps", params["steps"])
    """))
    done = run_script(script, env)
    assert done.returncode == 0, done.stderr
    assert "set up here" in done.stdout and "training" not in done.stdout
    run = Run.get(project="agent", name="remote", workspace=ws)
    assert run.state == "queued"

    agent(env, "--once")
    run = Run.get(run.id, workspace=ws)
    assert run.state == "completed", run.console()
    assert "training with 2 steps" in run.console()
    assert run.metrics["steps"]["steps"]["last"] == 2


def test_a_function_run_executes_one_function_with_its_edited_arguments(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "functions.py"
    script.write_text(textwrap.dedent("""\
        from etude.tracking import Run

        def run_me_remotely(some_argument, scale=1.0):
            print("function got", some_argument, scale)
            Run.current().logger.report_single_value("result", some_argument * scale)

        task = Run.init(project="agent", name="main", auto_resource_monitoring=False)
        made = task.create_function_task(
            func=run_me_remotely, func_name="func_id_run_me_remotely",
            task_name="a func task", some_argument=123, scale=2.0)
        if made is not None:
            made.set_parameter("Function/some_argument", 5)
            made.enqueue("default")
        print("main script done")
    """))
    done = run_script(script, env)
    assert done.returncode == 0, done.stderr
    func = Run.get(project="agent", name="a func task", workspace=ws)
    assert func.params == {"Function/some_argument": 5, "Function/scale": 2.0}
    assert func.state == "queued"

    agent(env, "--once")
    func = Run.get(func.id, workspace=ws)
    assert func.state == "completed", func.console()
    assert "function got 5 2.0" in func.console()
    assert "main script done" not in func.console()  # the process ended with the function
    assert func.metrics["result"]["result"]["last"] == 10.0
    assert len(Run.query(project="agent", name="a func task", workspace=ws)) == 1


def test_run_create_makes_a_draft_from_a_repository_without_running_it(
        repo: Path, ws: Path, env: dict[str, str]) -> None:
    git(repo, "add", "helper.py")
    git(repo, "commit", "-q", "-m", "helper")
    draft = Run.create(project="agent", name="from repo", repo=str(repo), branch="main",
                       script="train.py", argv=["--batch", "16"], workspace=ws)
    assert draft.state == "draft"
    assert draft.params == {}
    draft.enqueue("default")
    agent(env, "--once")
    ran = Run.get(draft.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    assert "lr=0.1 batch=16" in ran.console()
    assert ran.params["Args/batch"] == 16


def test_a_run_whose_code_cannot_be_rebuilt_fails_and_the_agent_goes_on(
        repo: Path, tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    bad = Run.create(project="agent", name="bad", repo=str(repo), commit="0" * 40,
                     script="train.py", workspace=ws)
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    early = Run.create(project="agent", name="exits early", script=str(crash), workspace=ws)
    good = tmp_path / "good.py"
    good.write_text("from etude.tracking import Run\nRun.init(project='agent', name='x')\n"
                    "print('fine')\n")
    fine = Run.create(project="agent", name="fine", script=str(good), workspace=ws)
    for run in (bad, early, fine):
        run.enqueue("default")
    agent(env, "--once")

    bad, early, fine = (Run.get(run.id, workspace=ws) for run in (bad, early, fine))
    assert bad.state == "failed" and "0000000000" in bad.console()
    assert "could not" in bad.console().lower() or "not" in bad.message
    assert early.state == "failed" and early.reason == "exit"
    assert "about to fail" in early.console() and "status 3" in early.message
    assert fine.state == "completed" and "fine" in fine.console()


# -- the state table ------------------------------------------------------------------------
def test_every_transition_of_the_state_table(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    with Run.init(project="states", name="done", workspace=ws, **QUIET) as run:
        run.connect({"lr": 0.1})
        run.logger.report_scalar("loss", "train", value=1.0, iteration=0)
    done = Run.get(run.id, workspace=ws)
    assert done.state == "completed"
    for action in (lambda: done.set_parameter("General/lr", 1), lambda: done.enqueue(),
                   done.dequeue, done.abort):
        with pytest.raises(RunStateError, match=r"completed.*allows: reset, publish, clone"):
            action()

    done.reset()
    assert done.state == "draft" and done.metrics == {} and done.params == {"General/lr": 0.1}
    done.set_parameter("General/lr", 0.5)
    done.enqueue("default")
    assert done.state == "queued"
    for action in (lambda: done.set_parameter("General/lr", 1), done.reset, done.abort,
                   lambda: done.enqueue("other")):
        with pytest.raises(RunStateError, match=r"queued.*allows: dequeue"):
            action()
    done.dequeue()
    assert done.state == "draft"
    for action in (done.dequeue, done.reset, done.publish, done.abort):
        with pytest.raises(RunStateError, match="draft"):
            action()

    done.archive()
    assert Run.query(project="states", workspace=ws) == []
    done.unarchive()
    assert [r.id for r in Run.query(project="states", workspace=ws)] == [done.id]

    with Run.init(project="states", name="pub", workspace=ws, **QUIET) as other:
        other.connect({"lr": 0.2})
    published = Run.get(other.id, workspace=ws)
    published.publish()
    assert published.state == "published"
    for action in (published.reset, lambda: published.set_parameter("General/lr", 1),
                   lambda: published.enqueue()):
        with pytest.raises(RunStateError, match="published"):
            action()
    copy = Run.clone(published)
    assert copy.state == "draft" and copy.name == "Clone Of pub"
    assert copy.params == {"General/lr": 0.2}
    with pytest.raises(ValueError, match="queue name"):
        copy.enqueue("no spaces allowed")


def test_abort_stops_a_running_run_and_records_aborted(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent("""\
        import time
        from etude.tracking import Run
        run = Run.init(project="states", name="long", auto_resource_monitoring=False)
        print("started", flush=True)
        for step in range(100000):
            run.logger.report_scalar("x", "y", value=step, iteration=step)
            time.sleep(0.01)
    """))
    child = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and "started" in child.stdout.readline()
        run = wait_for(lambda: _found(ws, "states", "long"), "the run's first files")
        assert run.state == "running"
        assert run.abort(wait=DEADLINE_S) == "aborted"
        assert child.wait(DEADLINE_S) != 0
        with pytest.raises(RunStateError, match=r"aborted.*allows: reset"):
            run.abort()
    finally:
        child.kill()


def _found(ws: Path, project: str, name: str) -> Run | None:
    """The run, once its process has written its first files (within 0.05 s of Run.init)."""
    try:
        return Run.get(project=project, name=name, workspace=ws)
    except RunNotFoundError:
        return None


# -- agents in the real world ---------------------------------------------------------------
def test_four_agents_on_one_queue_run_each_of_100_runs_exactly_once(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    ledger = tmp_path / "ledger.txt"
    script = tmp_path / "trivial.py"
    script.write_text(textwrap.dedent(f"""\
        import os
        from etude.tracking import Run
        run = Run.init(project="many", name="x", auto_connect_streams=False,
                       auto_resource_monitoring=False, auto_connect_frameworks=False)
        fd = os.open({str(ledger)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, (run.id + "\\n").encode())
    """))
    ids = []
    for index in range(100):
        draft = Run.create(project="many", name=f"r{index}", script=str(script), workspace=ws)
        draft.enqueue("default")
        ids.append(draft.id)
    close_indexes()
    agents = [start_agent(env, "--once", "--max-jobs", "2") for _ in range(4)]
    for process in agents:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    lines = ledger.read_text().split()
    assert sorted(lines) == sorted(ids)  # each run once, none twice
    runs = Run.query(project="many", workspace=ws)
    assert {run.state for run in runs} == {"completed"} and len(runs) == 100


def test_runs_of_an_agent_killed_with_sigkill_are_failed_and_queued_ones_stay(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "sleepy.py"
    script.write_text("import time\nfrom etude.tracking import Run\n"
                      "Run.init(project='kill', name='x', auto_resource_monitoring=False)\n"
                      "print('running', flush=True)\ntime.sleep(600)\n")
    first = Run.create(project="kill", name="first", script=str(script), workspace=ws)
    second = Run.create(project="kill", name="second", script=str(script), workspace=ws)
    first.enqueue("default")
    second.enqueue("default")
    process = start_agent(env)  # --max-jobs 1: the second run waits in the queue
    try:
        wait_for(lambda: "running" in Run.get(first.id, workspace=ws).console(),
                 "the first run to start")
        (dead_work,) = (ws / "agents").iterdir()  # the rebuilt code of the first run
        assert (dead_work / first.id).is_dir()
        process.kill()
        process.wait(DEADLINE_S)
    finally:
        process.kill()
    # The next agent to start settles the dead one's runs, then runs the queued one.
    marker = tmp_path / "quick.py"
    marker.write_text("from etude.tracking import Run\nRun.init(project='kill', name='q')\n")
    second.reload()
    assert second.state == "queued"
    replacement = start_agent(env)
    try:
        killed = wait_for(lambda: Run.get(first.id, workspace=ws).state == "failed"
                          and Run.get(first.id, workspace=ws), "the first run to be failed")
        assert killed.reason == "killed"
        # The dead agent's work folder goes with it (a reader may mark the run killed from
        # its stale heartbeat before the new agent's recovery gets there).
        wait_for(lambda: not dead_work.exists(), "the dead agent's work folder to go")
        wait_for(lambda: Run.get(second.id, workspace=ws).state == "running",
                 "the second run to start in the new agent")
        replacement.send_signal(signal.SIGTERM)
        replacement.wait(DEADLINE_S)
    finally:
        replacement.kill()
    second = Run.get(second.id, workspace=ws)
    assert second.state == "aborted"
    # settled first: the dead agent's run had ended when the queued one started
    assert killed.ended is not None and second.started is not None
    assert killed.ended <= second.started


def test_agent_list_shows_agents_and_sigterm_stops_one_cleanly(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "sleepy.py"
    script.write_text("import time\nfrom etude.tracking import Run\n"
                      "Run.init(project='term', name='x', auto_resource_monitoring=False)\n"
                      "print('running', flush=True)\ntime.sleep(600)\n")
    run = Run.create(project="term", name="slow", script=str(script), workspace=ws)
    run.enqueue("gpu")
    process = start_agent(env, "--queue", "gpu", "--queue", "default")
    try:
        wait_for(lambda: "running" in Run.get(run.id, workspace=ws).console(),
                 "the run to start")
        listed = subprocess.run([*ETUDE, "agent", "list", "--json"], env=env,
                                capture_output=True, text=True, check=True)
        (found,) = json.loads(listed.stdout)
        assert found["queues"] == ["gpu", "default"] and found["pid"] == process.pid
        wait_for(lambda: run.id in json.loads(subprocess.run(
            [*ETUDE, "agent", "list", "--json"], env=env, capture_output=True, text=True,
            check=True).stdout)[0]["running"], "the agent to list its run")
        queues = subprocess.run([*ETUDE, "queues", "list", "--json"], env=env,
                                capture_output=True, text=True, check=True)
        assert json.loads(queues.stdout) == {"gpu": {"queued": 0, "running": 1}}
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE_S) == 0
    finally:
        process.kill()
    assert Run.get(run.id, workspace=ws).state == "aborted"
    listed = subprocess.run([*ETUDE, "agent", "list", "--json"], env=env, capture_output=True,
                            text=True, check=True)
    assert json.loads(listed.stdout) == []


JOB_SCRIPT = """
import sys
from etude import Param, Task, experiment
from etude.tracking import Run

class Learn(Task):
    lr: Param[float]
    epochs: Param[int] = 2

    def execute(self):
        run = Run.current()
        for epoch in range(self.epochs):
            run.logger.report_scalar("loss", "train", self.lr / (epoch + 1), epoch)
        print("learned with", self.lr, self.epochs)

if __name__ == "__main__":
    with experiment(sys.argv[1], "jobs"):
        Learn.C(lr=0.1).submit()
"""


def test_a_clone_of_a_jobs_run_becomes_a_job_of_its_own(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "learn.py"
    script.write_text(JOB_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(ws)], env=env, capture_output=True,
                          text=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    (job_run,) = Run.query(project="jobs", workspace=ws)
    assert job_run.params["Config/lr"] == 0.1

    draft = Run.clone(job_run, name="lr 0.3")
    draft.set_parameter("Config/lr", 0.3)
    draft.set_parameter("Config/epochs", 4)
    draft.enqueue("default")
    same = Run.clone(job_run, name="unchanged")
    same.enqueue("default")
    wrong = Run.clone(job_run, name="bad value")
    wrong.set_parameter("Config/lr", "not a number")
    wrong.enqueue("default")
    agent(env, "--once")

    ran = Run.get(draft.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    # The draft and the job it became are both in the source's project.
    lr_03 = Run.query(where="params.lr = 0.3", project="jobs", workspace=ws)
    assert sorted(r.job is not None for r in lr_03) == [False, True]
    new_job = [r for r in lr_03 if r.job is not None]
    assert new_job[0].metrics["loss"]["train"]["count"] == 4
    assert ran._read_meta()["executed_job"] == Path(new_job[0].job["folder"]).relative_to(
        ws).as_posix()
    # The unchanged clone is the same configuration: done already, not run again.
    unchanged = Run.get(same.id, workspace=ws)
    assert unchanged.state == "completed", unchanged.console()
    assert unchanged._read_meta()["executed_job"] == Path(job_run.job["folder"]).relative_to(
        ws).as_posix()
    assert len([r for r in Run.query(project="jobs", workspace=ws) if r.job]) == 2
    failed = Run.get(wrong.id, workspace=ws)
    assert failed.state == "failed" and "lr" in (failed.message or "") + failed.console()


PIPELINE_SCRIPT = """
import sys
from etude import Param, Task, experiment

class Prepare(Task):
    size: Param[int]

    def execute(self):
        print("prepared", self.size)

class Learn(Task):
    data: Param[Prepare]
    lr: Param[float]

    def execute(self):
        print("learned on", self.data.size, "with", self.lr)

if __name__ == "__main__":
    with experiment(sys.argv[1], "pipeline"):
        prepared = Prepare.C(size=3)
        prepared.submit()
        Learn.C(data=prepared, lr=0.1).submit()
"""


def test_a_clone_of_a_job_with_a_dependency_submits_the_dependency_first(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(ws)], env=env, capture_output=True,
                          text=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    (learn,) = Run.query(project="pipeline", name="Learn", workspace=ws)
    draft = Run.clone(learn, name="lr 0.3")
    draft.set_parameter("Config/lr", 0.3)
    draft.enqueue("default")
    agent(env, "--once")

    ran = Run.get(draft.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    jobs = [r for r in Run.query(project="pipeline", workspace=ws) if r.job]
    assert sorted(r.name for r in jobs) == ["Learn", "Learn", "Prepare"]  # Prepare reused
    assert "learned on 3 with 0.3" in Run.get(
        next(r for r in jobs if r.params.get("Config/lr") == 0.3).id, workspace=ws).console()
