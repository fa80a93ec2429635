"""`etude projects list`: the project tree with run counts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etude.cli.projects import project_tree
from etude.tracking import Run

from .support import run_cli
from .test_runs_cli import projects_ws  # noqa: F401 (a fixture)


def test_tree_counts_include_sub_projects() -> None:
    tree = project_tree({("a/b/c", "completed"): 2, ("a", "failed"): 1, ("a/d", "completed"): 1})
    assert [(n.path, n.runs, n.own) for n in tree] == [
        ("a", 4, 1), ("a/b", 2, 0), ("a/b/c", 2, 2), ("a/d", 1, 1)]
    assert tree[0].states == {"completed": 3, "failed": 1}


def test_projects_list_table(projects_ws: Path,  # noqa: F811
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "-w", projects_ws, "projects", "list")
    assert code == 0, err
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[0].split() == ["PROJECT", "RUNS"]
    assert [line.split() for line in lines[1:]] == [
        ["nlp", "1"], ["vision", "3"], ["cifar", "1"], ["mnist", "2"], ["visionary", "1"]]
    assert lines[3].startswith("   cifar")  # indented under vision


def test_projects_list_states_and_json(projects_ws: Path,  # noqa: F811
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (a,) = Run.query(workspace=projects_ws, name="a")
    Run.get(a.id, workspace=projects_ws).archive()
    code, out, _ = run_cli(capsys, "-w", projects_ws, "projects", "list", "--states")
    assert code == 0
    assert out.splitlines()[0].split() == ["PROJECT", "RUNS", "COMPLETED"]
    assert "mnist" in out and out.splitlines()[4].split() == ["mnist", "1", "1"]  # archived: out
    code, out, _ = run_cli(capsys, "-w", projects_ws, "projects", "list", "--json",
                           "--archived")
    vision = next(p for p in json.loads(out) if p["project"] == "vision")
    assert vision == {"project": "vision", "name": "vision", "parent": None, "depth": 0,
                      "runs": 3, "own_runs": 0, "states": {"completed": 3}}


def test_projects_list_of_an_empty_workspace(tmp_path: Path, store_env: dict[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs").mkdir()
    code, out, _ = run_cli(capsys, "-w", tmp_path, "projects", "list", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = run_cli(capsys, "-w", tmp_path, "projects", "list")
    assert code == 0 and out.startswith("No runs in")
