"""`etude runs clone|enqueue|dequeue|reset|publish|archive|unarchive|create|sweep` and
`etude queues list` (SQLite and PostgreSQL); the agent that runs what they queue is tested in
tests/tracking/test_agent.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.tracking import Run
from etude.tracking.query import close_indexes

from .support import run_cli
from .test_runs_cli import make_run


@pytest.fixture
def base(tmp_path: Path, store_env: dict[str, str]) -> Iterator[Run]:
    run = make_run(tmp_path / "ws", "vision/mnist", "baseline",
                   params={"lr": 0.1, "batch": 32, "model": "cnn"})
    yield run
    close_indexes()


def test_clone_with_settings_keeps_types_and_enqueues(base: Run, capsys) -> None:
    ws = base.workspace
    status, out, err = run_cli(capsys, "runs", "clone", "vision/mnist/baseline", "-w", ws,
                               "--name", "small lr", "--set", "General/lr=0.01",
                               "--set", "batch=64", "--enqueue", "default")
    assert status == 0, err
    clone = Run.get(out.strip(), workspace=ws)
    assert clone.params == {"General/lr": 0.01, "General/batch": 64, "General/model": "cnn"}
    assert clone.state == "queued" and clone.parent == base.id and clone.name == "small lr"
    status, out, _ = run_cli(capsys, "queues", "list", "--json", "-w", ws)
    assert json.loads(out) == {"default": {"queued": 1, "running": 0}}

    status, out, err = run_cli(capsys, "runs", "dequeue", clone.id[:10], "-w", ws)
    assert status == 0 and "draft" in out
    status, out, err = run_cli(capsys, "runs", "enqueue", clone.id, "-q", "gpu", "-w", ws)
    assert status == 0 and "queued" in out
    status, out, _ = run_cli(capsys, "queues", "list", "--json", "-w", ws)
    assert json.loads(out) == {"gpu": {"queued": 1, "running": 0}}


def test_bad_transitions_and_settings_are_clear_errors(base: Run, capsys) -> None:
    ws = base.workspace
    status, _, err = run_cli(capsys, "runs", "enqueue", base.id, "-w", ws)
    assert status == 2 and "completed" in err and "reset" in err
    status, _, err = run_cli(capsys, "runs", "clone", base.id, "--set", "lr", "-w", ws)
    assert status == 2 and "Section/key=VALUE" in err
    status, _, err = run_cli(capsys, "runs", "dequeue", "nosuchrun", "-w", ws)
    assert status == 2 and "nosuchrun" in err


def test_reset_publish_archive_unarchive(base: Run, capsys) -> None:
    ws = base.workspace
    assert run_cli(capsys, "runs", "reset", base.id, "-w", ws)[0] == 0
    assert Run.get(base.id, workspace=ws).state == "draft"
    other = make_run(ws, "vision/mnist", "other", params={"lr": 0.5})
    status, out, _ = run_cli(capsys, "runs", "publish", other.id, "-w", ws)
    assert status == 0 and "published" in out
    status, _, err = run_cli(capsys, "runs", "reset", other.id, "-w", ws)
    assert status == 2 and "published" in err
    assert run_cli(capsys, "runs", "archive", other.id, base.id, "-w", ws)[0] == 0
    assert Run.query(project="vision", workspace=ws) == []
    assert run_cli(capsys, "runs", "unarchive", other.id, "-w", ws)[0] == 0
    assert [r.id for r in Run.query(project="vision", workspace=ws)] == [other.id]


def test_create_records_a_draft_and_can_enqueue_it(base: Run, tmp_path: Path, capsys) -> None:
    ws = base.workspace
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==1.26.4\n# a comment\n")
    status, out, err = run_cli(capsys, "runs", "create", "-w", ws, "--project", "tools",
                               "--name", "job", "--script", script, "--requirements",
                               requirements, "--queue", "default", "--", "--epochs", "3")
    assert status == 0, err
    draft = Run.get(out.strip(), workspace=ws)
    assert draft.state == "queued"
    assert draft.environment["argv"][1:] == ["--epochs", "3"]
    assert draft.environment["packages"] == ["numpy==1.26.4"]
    assert draft.environment["code"]["text"] == "print('hi')\n"


def test_sweep_clones_the_grid_tagged_with_one_sweep_id(base: Run, capsys) -> None:
    ws = base.workspace
    status, out, err = run_cli(capsys, "runs", "sweep", base.id, "-w", ws, "--json",
                               "--set", "General/lr=0.1,0.01,0.001", "--set", "batch=32,64")
    assert status == 0, err
    made = json.loads(out)
    assert len(made["runs"]) == 6
    runs = Run.query(where=f'tags.sweep = "{made["sweep"]}"', workspace=ws)
    assert len(runs) == 6 and {run.state for run in runs} == {"queued"}
    grid = {(run.params["General/lr"], run.params["General/batch"]) for run in runs}
    assert grid == {(lr, b) for lr in (0.1, 0.01, 0.001) for b in (32, 64)}
    status, out, _ = run_cli(capsys, "runs", "sweep", base.id, "-w", ws, "--json",
                             "--set", "General/lr=0.1,0.01,0.001", "--random", "2",
                             "--seed", "1")
    assert status == 0 and len(json.loads(out)["runs"]) == 2
