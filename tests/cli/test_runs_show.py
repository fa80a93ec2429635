"""`etude runs show`: everything a run captured, for a script run in a git repository and
for the run of a job (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.tracking import Run
from etude.tracking.query import close_indexes

from .support import job_ids, run_cli

SCRIPT = """
import sys
from etude.tracking import Run

run = Run.init(project="vision/mnist", name="failing", tags=["cnn"], workspace=sys.argv[1],
               auto_connect_frameworks=False, auto_resource_monitoring=False)
run.connect({"lr": 0.1, "layers": [64, 32]})
run.connect({"batch": 32, "clip": float("nan"), "cap": float("-inf")}, name="Data")
run.connect_configuration({"optimizer": {"name": "adam"}}, name="model")
run.set_user_properties(dataset="mnist")
for step in range(3):
    run.logger.report_scalar("loss", "train", 1.0 / (step + 1), step)
run.logger.report_single_value("accuracy", 0.75)
run.upload_artifact("summary", {"best": 2})
for line in range(30):
    print(f"line {line}")
raise ValueError("diverged")
"""


def _git(repo: Path, *argv: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *argv],
                   cwd=repo, check=True, capture_output=True)


@pytest.fixture
def failed_run(tmp_path: Path, store_env: dict[str, str]) -> Iterator[tuple[Path, Run]]:
    """A run of a script committed to git and changed since, which printed 30 lines and
    failed."""
    repo, ws = tmp_path / "code", tmp_path / "ws"
    repo.mkdir()
    script = repo / "train.py"
    script.write_text("print('first version')\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    script.write_text(textwrap.dedent(SCRIPT))
    result = subprocess.run([sys.executable, str(script), str(ws), "--seed", "3"], cwd=repo,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "diverged" in result.stderr, result.stderr
    (run,) = Run.query(workspace=ws)
    yield ws, run
    close_indexes()


def test_show_prints_everything_captured(failed_run: tuple[Path, Run],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ws, run = failed_run
    code, out, err = run_cli(capsys, "-w", ws, "runs", "show", "vision/mnist/failing")
    assert code == 0, err
    lines = out.splitlines()
    assert f"id:        {run.id}" in lines
    assert "state:     failed (exception)" in lines
    assert any(line.startswith("message:") and "diverged" in line for line in lines)
    assert any(line.startswith("host:") and "pid" in line for line in lines)
    general = lines.index("parameters [General]:")
    assert lines[general + 1:general + 3] == ["  layers = [64, 32]", "  lr = 0.1"]
    data = lines.index("parameters [Data]:")
    assert lines[data + 1:data + 4] == ["  batch = 32", "  cap = -inf", "  clip = nan"]
    assert "configuration 'model':" in lines and '      "name": "adam"' in lines
    assert "  dataset = mnist" in lines
    metrics = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  loss/")
               or line.startswith("  accuracy ")}
    assert metrics == {"loss/train": ["0.333333", "0.333333", "1", "3"],
                       "accuracy": ["0.75", "0.75", "0.75", "1"]}
    summary = next(line for line in lines if line.startswith("  summary  "))
    assert "json" in summary and "sha256" in summary and "best" in summary


def test_show_describes_the_code_and_console(failed_run: tuple[Path, Run],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ws, run = failed_run
    code, out, _ = run_cli(capsys, "-w", ws, "runs", "show", run.id[:8])
    assert code == 0
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ws.parent / "code", text=True,
                            capture_output=True, check=True).stdout.strip()
    assert f"  git:      {commit} on main of {ws.parent / 'code'}" in out
    assert "  diff:     none" not in out and "  diff:     " in out
    assert "--seed 3" in out and "  packages: " in out
    assert 'ValueError("diverged")' in out or "ValueError: diverged" in out
    tail = out[out.index("console (last 20 lines"):]
    assert "line 29" in tail and "line 10\n" in tail and "line 9\n" not in tail
    code, out, _ = run_cli(capsys, "-w", ws, "runs", "show", run.id[:8], "--console")
    assert "line 0\n" in out[out.index("console:"):]


def test_show_json_is_the_whole_record(failed_run: tuple[Path, Run],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ws, run = failed_run
    code, out, _ = run_cli(capsys, "-w", ws, "runs", "show", run.id, "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["state"], data["reason"], data["tags"]) == ("failed", "exception", ["cnn"])
    assert data["params"] == {"General/lr": 0.1, "General/layers": [64, 32], "Data/batch": 32,
                              "Data/clip": None, "Data/cap": None}  # JSON has no NaN
    assert data["configuration"] == {"model": {"optimizer": {"name": "adam"}}}
    assert data["user_properties"] == {"dataset": "mnist"}
    assert data["metrics"]["loss"]["train"] == {"last": 1 / 3, "min": 1 / 3, "max": 1.0,
                                                "count": 3}
    assert data["artifacts"]["summary"]["sha256"] == run.artifacts["summary"].sha256
    code_state = data["environment"]["code"]
    assert code_state["kind"] == "git" and "diverged" in code_state["diff"]
    assert data["environment"]["argv"][-2:] == ["--seed", "3"]
    assert "ValueError" in data["traceback"] and data["job"] is None
    assert data["console"].count("\n") == 20
    code, out, _ = run_cli(capsys, "-w", ws, "runs", "show", run.id, "--json", "--console")
    assert json.loads(out)["console"].count("line ") == 30


@pytest.fixture
def job_ws(store_env: dict[str, str], demo: Path) -> Iterator[Path]:
    yield demo
    close_indexes()


def test_show_a_job_run_links_its_job(job_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = job_ids(job_ws)["x2"]
    code, out, err = run_cli(capsys, "-w", job_ws, "runs", "show", job_id[:10])
    assert code == 0, err
    assert f"(its output: etude jobs log {job_id[:12]})" in out
    assert "state:     failed (error)" in out and "  x = 2" in out
    assert "boom" in out  # the job's stderr is its console
    code, out, _ = run_cli(capsys, "-w", job_ws, "runs", "show", job_id, "--json")
    assert json.loads(out)["job"]["id"] == job_id
