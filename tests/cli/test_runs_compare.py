"""`etude runs compare`: parameters and last metrics side by side (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.tracking.query import close_indexes

from .support import run_cli
from .test_runs_cli import make_run


@pytest.fixture
def three(tmp_path: Path, store_env: dict[str, str]) -> Iterator[Path]:
    """Three runs: same epochs, different lr; only `b` has a dropout; `c` has no accuracy."""
    ws = tmp_path / "ws"
    make_run(ws, "p", "a", params={"lr": 0.1, "epochs": 3},
             metrics={("accuracy", "accuracy"): 0.5, ("loss", "train"): 0.25})
    make_run(ws, "p", "b", params={"lr": 0.01, "epochs": 3, "dropout": 0.5},
             metrics={("accuracy", "accuracy"): 0.8, ("loss", "train"): 0.125})
    make_run(ws, "p", "c", params={"lr": 1, "epochs": 3}, metrics={("loss", "train"): 2.0})
    yield ws
    close_indexes()


def table(out: str) -> dict[str, list[str]]:
    """The first cell of each line -> the other cells (cells are separated by 2+ spaces)."""
    import re

    rows = {}
    for line in out.splitlines():
        cells = [cell for cell in re.split(r"\s{2,}", line.strip()) if cell]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_compare_shows_only_what_differs(three: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "-w", three, "runs", "compare", "p/a", "p/b", "p/c")
    assert code == 0, err
    rows = table(out)
    assert rows["General/lr"] == ["0.1", "0.01", "1"]
    assert rows["General/dropout"] == ["—", "0.5", "—"]
    assert "General/epochs" not in rows
    assert rows["state"] == ["completed"] * 3
    assert rows["accuracy"] == ["0.5", "0.8", "—"]
    assert rows["loss/train"] == ["0.25", "0.125", "2"]


def test_compare_all_shows_equal_parameters(three: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "-w", three, "runs", "compare", "p/a", "p/b", "--all")
    assert code == 0
    assert table(out)["General/epochs"] == ["3", "3"]


def test_compare_json(three: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "-w", three, "runs", "compare", "p/a", "p/c", "--json")
    assert code == 0
    data = json.loads(out)
    assert [run["name"] for run in data["runs"]] == ["a", "c"]
    assert data["params"] == [{"key": "General/lr", "values": [0.1, 1], "present": [True, True],
                               "same": False}]
    assert {(m["title"], m["series"]): m["values"] for m in data["metrics"]} == {
        ("accuracy", "accuracy"): [0.5, None], ("loss", "train"): [0.25, 2.0]}


def test_compare_tells_types_apart(tmp_path: Path, store_env: dict[str, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """1 and 1.0 and "1" are different values: the recorded types differ."""
    ws = tmp_path / "ws"
    for name, value in [("int", 1), ("float", 1.0), ("text", "1")]:
        make_run(ws, "p", name, params={"x": value})
    try:
        code, out, _ = run_cli(capsys, "-w", ws, "runs", "compare", "p/int", "p/float",
                               "p/text")
        assert code == 0
        assert table(out)["General/x"] == ["1", "1.0", '"1"']
        code, out, _ = run_cli(capsys, "-w", ws, "runs", "compare", "p/int", "p/float",
                               "p/text", "--json")
        assert json.loads(out)["params"][0]["values"] == [1, 1.0, "1"]
    finally:
        close_indexes()


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["p/a"], "needs two runs or more", id="one"),
    pytest.param(["p/a", "p/a"], "'p/a' and 'p/a' name the same run", id="twice"),
    pytest.param(["p/a", "p/zz"], "no run named 'zz' in project 'p'", id="unknown"),
])
def test_compare_refuses(three: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                         expected: str) -> None:
    code, out, err = run_cli(capsys, "-w", three, "runs", "compare", *argv)
    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err
