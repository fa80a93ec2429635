"""A new run's first files (run.json, status.json, the pointer) wait for the writer thread's
first flush, `FIRST_WRITE_SECONDS` after `Run.init()`, or its close: a run of a few
milliseconds writes each file once. These tests pin what a user sees of that: the process
that records the run finds it at once, others within moments, and a folder caught before
its run.json is neither a run nor a reason to miss the run it becomes. On both databases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from etude.tracking import Run, RunNotFoundError, recorder
from etude.tracking.recorder import FIRST_WRITE_SECONDS
from etude.workspace.run_folder import runs_root
from polling import wait_until

from .conftest import QUIET

pytestmark = pytest.mark.usefixtures("store_env")


def test_the_recording_process_finds_its_new_run_at_once(ws: Path) -> None:
    run = Run.init(project="p", name="now", workspace=ws, **QUIET)
    run.connect({"lr": 0.1})
    assert [r.id for r in Run.query(project="p", workspace=ws)] == [run.id]
    found = Run.get(run.id, workspace=ws)
    assert found.state == "running" and found.params == {"General/lr": 0.1}
    assert Run.get(project="p", name="now", workspace=ws).id == run.id


def test_another_process_sees_a_new_run_within_moments(tmp_path: Path, ws: Path,
                                                       store_env: dict[str, str]) -> None:
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(f"""\
        import sys, time
        from etude.tracking import Run
        run = Run.init(project="p", name="slow", workspace={str(ws)!r},
                       auto_resource_monitoring=False, auto_connect_streams=False)
        run.connect({{"lr": 0.5}})
        print(run.id, flush=True)
        sys.stdin.readline()
    """))
    child = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, **store_env})
    try:
        assert child.stdout is not None and child.stdin is not None
        run_id = child.stdout.readline().strip()

        def seen() -> Run | None:
            try:
                return Run.get(run_id, workspace=ws)
            except RunNotFoundError:
                return None

        run = wait_until(seen, "the child's run", 30.0)
        assert run.state == "running" and run.params == {"General/lr": 0.5}
        assert [r.id for r in Run.query(project="p", state="running", workspace=ws)] == [run_id]
        child.stdin.write("\n")
        child.stdin.close()
        assert child.wait(30) == 0
        assert Run.get(run_id, workspace=ws).state == "completed"
    finally:
        child.kill()


def test_a_run_killed_before_its_first_files_leaves_no_record_and_no_harm(
        tmp_path: Path, ws: Path, store_env: dict[str, str]) -> None:
    """SIGKILL right after Run.init: the folder it made holds no run.json, so it is not a run
    (the documented cost of writing the first files later); listings go on working."""
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(f"""\
        import os, signal
        from etude.tracking import Run, recorder
        recorder.FIRST_WRITE_SECONDS = 60.0  # the kill comes first, however loaded the machine
        run = Run.init(project="p", name="killed", workspace={str(ws)!r},
                       auto_resource_monitoring=False)
        print("output before the kill", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, **store_env}, timeout=60)
    assert done.returncode == -signal.SIGKILL
    folders = [p for p in runs_root(ws).iterdir() if not p.name.startswith(".")]
    assert len(folders) == 1 and not (folders[0] / "run.json").exists()
    assert Run.query(workspace=ws) == []
    with Run.init(project="p", name="after", workspace=ws, **QUIET):
        pass
    assert [r.name for r in Run.query(workspace=ws)] == ["after"]


def test_a_folder_listed_before_its_run_json_is_found_once_it_has_one(ws: Path) -> None:
    """A reader may list `runs/` between the folder's creation and its first flush: the run
    must still be found afterwards, although `runs/` itself does not change again."""
    with Run.init(project="p", name="model", workspace=ws, **QUIET) as model:
        model.connect({"lr": 0.25})
    assert len(Run.query(workspace=ws)) == 1
    later = runs_root(ws) / ("f" * 32)
    later.mkdir()  # what a live run has made when a reader comes by
    assert len(Run.query(workspace=ws)) == 1  # listed: no run.json yet
    if (model.folder / "status.json").exists():  # else run.json holds it
        shutil.copyfile(model.folder / "status.json", later / "status.json")
    meta = json.loads((model.folder / "run.json").read_text())
    (later / "run.json").write_text(json.dumps({**meta, "id": later.name, "name": "later"}))
    assert sorted(r.name for r in Run.query(workspace=ws)) == ["later", "model"]
    assert Run.get(later.name, workspace=ws).params == {"General/lr": 0.25}


def test_a_run_ended_before_its_first_flush_has_its_status_in_run_json(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "FIRST_WRITE_SECONDS", 60.0)  # close comes first, surely
    run = Run.init(project="p", name="short", workspace=ws, **QUIET)
    run.connect({"epochs": 3})
    run.logger.report_scalar("loss", "train", value=0.5, iteration=0)
    run.close()
    assert sorted(os.listdir(run.folder)) == ["run.json", "scalars.bin"]
    meta = json.loads((run.folder / "run.json").read_text())
    assert meta["params"] == {"General": {"epochs": 3}}
    assert meta["status"]["state"] == "completed" and meta["status"]["ended"]
    (found,) = Run.query(where="metrics.loss.train = 0.5", state="completed", workspace=ws)
    assert found.id == run.id and found.metrics["loss"]["train"]["last"] == 0.5
    assert Run.get(run.id, workspace=ws).ended == meta["status"]["ended"]
    Run.get(run.id, workspace=ws).reset()  # writes status.json, which wins from then on
    assert Run.get(run.id, workspace=ws).state == "draft"
    assert [r.state for r in Run.query(workspace=ws)] == ["draft"]


def test_a_run_ended_before_its_first_flush_is_reused_by_the_next(ws: Path) -> None:
    with Run.init(project="p", name="short", workspace=ws, **QUIET) as run:
        run.connect({"epochs": 3})
    assert FIRST_WRITE_SECONDS < 1.0
    reused = Run.init(project="p", name="short", workspace=ws, **QUIET)  # found by its pointer
    assert reused.id == run.id and reused.params == {} and reused.state == "running"
    reused.close()
    assert Run.get(run.id, workspace=ws).state == "completed"


def test_later_runs_of_a_process_share_one_copy_of_the_environment(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep in one script: the first run writes environment.json, the later ones name one
    shared copy (a dirty repository's diff is not stored a thousand times)."""
    from etude.tracking import live

    monkeypatch.setattr(live, "_capture_cache", {})  # this test's first run is the process's
    monkeypatch.setattr(live, "_shared_environments", {})
    first = Run.init(project="p", name="sweep-0", workspace=ws,
                     **{**QUIET, "auto_connect_streams": False})
    captured = first.environment
    first.close()
    assert captured["python"] and (first.folder / "environment.json").exists()
    later = []
    for index in (1, 2):
        run = Run.init(project="p", name=f"sweep-{index}", workspace=ws, **QUIET)
        assert run.environment == captured  # live: through its pending run.json
        run.close()
        later.append(run)
    shared = list((runs_root(ws) / ".environments").iterdir())
    assert len(shared) == 1
    for run in later:
        assert not (run.folder / "environment.json").exists()
        assert Run.get(run.id, workspace=ws).environment == captured
    clone = Run.clone(later[0], name="copy")
    assert (clone.folder / "environment.json").exists() and clone.environment == captured
    assert sorted(r.name for r in Run.query(project="p", workspace=ws)) == [
        "copy", "sweep-0", "sweep-1", "sweep-2"]  # the shared folder is not a run


def test_a_damaged_shared_environment_is_named(ws: Path) -> None:
    from etude.workspace import CorruptFileError

    with Run.init(project="p", name="a", workspace=ws, **QUIET):
        pass
    with Run.init(project="p", name="b", workspace=ws, **QUIET) as run:
        pass
    (shared,) = (runs_root(ws) / ".environments").iterdir()
    shared.write_text("[1, 2")
    with pytest.raises(CorruptFileError, match=r"\.environments/.*not valid JSON"):
        Run.get(run.id, workspace=ws).environment  # noqa: B018 -- the read raises


def _train(lr: float) -> float:
    return lr


def test_a_function_run_made_by_a_later_run_of_a_process_has_its_code_state(ws: Path) -> None:
    """The later run names the shared environment in a run.json not written yet: the
    function draft must still get the code state an agent needs."""
    with Run.init(project="p", name="first", workspace=ws, **QUIET):
        pass
    run = Run.init(project="p", name="second", workspace=ws, **QUIET)
    draft = run.create_function_task(_train, lr=0.1)
    assert draft is not None and draft.environment and draft.environment == run.environment
    assert (draft.folder / "environment.json").exists()
    run.close()
