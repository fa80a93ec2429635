"""`etude runs list|show` on a workspace with tracked runs (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etude.cli import main
from etude.tracking import Run
from etude.tracking.query import close_indexes

QUIET = {"auto_connect_arg_parser": False, "auto_connect_frameworks": False,
         "auto_resource_monitoring": False, "auto_connect_streams": False}


@pytest.fixture
def runs_ws(tmp_path: Path, store_env: dict[str, str]) -> Path:
    ws = tmp_path / "ws"
    for name, lr, loss in [("a", 0.1, 0.5), ("b", 0.01, 0.2)]:
        run = Run.init(project="vision/mnist", name=name, tags=["cnn"], workspace=ws,
                       reuse_last=False, **QUIET)  # type: ignore[arg-type]
        run.connect({"lr": lr})
        run.logger.report_scalar("loss", "train", loss, 0)
        run.close()
    yield ws
    close_indexes()


def test_list_filters_and_columns(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-w", str(runs_ws), "runs", "list", "--where", "params.lr < 0.05",
                 "--columns", "params.lr,metrics.loss.train", "--json"])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["state"], row["tags"]) == ("b", "completed", ["cnn"])
    assert row["columns"] == {"params.lr": 0.01, "metrics.loss.train": 0.2}
    assert row["params"] == {"General/lr": 0.01}


def test_list_table_sort_and_count(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(runs_ws), "runs", "list", "--sort", "-metrics.loss.train"]) == 0
    out = capsys.readouterr().out
    assert out.index(" a ") < out.index(" b ")
    assert main(["-w", str(runs_ws), "runs", "list", "--count", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"completed": 2}


def test_bad_filter_exits_2_with_the_column(runs_ws: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(runs_ws), "runs", "list", "--where", "metrics.loss.train.avg < 1"]) == 2
    assert "column" in capsys.readouterr().err


def test_show(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run,) = Run.query(workspace=runs_ws, name="a")
    assert main(["-w", str(runs_ws), "runs", "show", run.id[:8]]) == 0
    out = capsys.readouterr().out
    assert "General/lr = 0.1" in out and "loss/train = 0.5" in out
    assert main(["-w", str(runs_ws), "runs", "show", run.id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metrics"]["loss"]["train"]["last"] == 0.5
    assert main(["-w", str(runs_ws), "runs", "show", "ffff"]) == 2


def test_rebuild_restores_runs(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(runs_ws), "index", "rebuild"]) == 0
    capsys.readouterr()
    assert main(["-w", str(runs_ws), "runs", "list", "--json"]) == 0
    assert sorted(row["name"] for row in json.loads(capsys.readouterr().out)) == ["a", "b"]
