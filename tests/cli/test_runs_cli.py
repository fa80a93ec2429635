"""`etude runs list` and how every `etude runs` command names a run (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etude.cli import main
from etude.tracking import Run
from etude.tracking.query import close_indexes

from .support import run_cli

QUIET = {"auto_connect_arg_parser": False, "auto_connect_frameworks": False,
         "auto_resource_monitoring": False, "auto_connect_streams": False}


def make_run(ws: Path, project: str, name: str, *, params: dict[str, Any] | None = None,
             tags: list[str] | None = None, metrics: dict[tuple[str, str], float] | None = None,
             user: dict[str, Any] | None = None, type: str = "training") -> Run:
    """A closed run of `project`/`name` with these parameters (section General), tags,
    last metric values and user properties."""
    run = Run.init(project=project, name=name, tags=tags or [], type=type, workspace=ws,
                   reuse_last=False, **QUIET)  # type: ignore[arg-type]
    if params:
        run.connect(params)
    for (title, series), value in (metrics or {}).items():
        run.logger.report_scalar(title, series, value, 0)
    if user:
        run.set_user_properties(**user)
    run.close()
    return run


@pytest.fixture
def runs_ws(tmp_path: Path, store_env: dict[str, str]) -> Iterator[Path]:
    ws = tmp_path / "ws"
    for name, lr, loss in [("a", 0.1, 0.5), ("b", 0.01, 0.2)]:
        make_run(ws, "vision/mnist", name, params={"lr": lr}, tags=["cnn"],
                 metrics={("loss", "train"): loss}, user={"dataset": "mnist"})
    yield ws
    close_indexes()


@pytest.fixture
def projects_ws(tmp_path: Path, store_env: dict[str, str]) -> Iterator[Path]:
    """Runs in vision/mnist (2), vision/cifar (1, tagged debug), visionary (1), nlp (1)."""
    ws = tmp_path / "ws"
    make_run(ws, "vision/mnist", "a", params={"lr": 0.1}, tags=["cnn"],
             metrics={("accuracy", "accuracy"): 0.5})
    make_run(ws, "vision/mnist", "b", params={"lr": 0.01}, tags=["cnn"],
             metrics={("accuracy", "accuracy"): 0.8})
    make_run(ws, "vision/cifar", "c", params={"lr": 0.01}, tags=["cnn", "debug"],
             metrics={("accuracy", "accuracy"): 0.9})
    make_run(ws, "visionary", "v", type="testing")
    make_run(ws, "nlp", "d", params={"lr": 0.5})
    yield ws
    close_indexes()


def names(capsys: pytest.CaptureFixture[str], ws: Path, *argv: str) -> list[str]:
    """The names of the runs `runs list --json ARGV` prints, in its order."""
    code, out, err = run_cli(capsys, "-w", ws, "runs", "list", "--json", *argv)
    assert code == 0, err
    return [row["name"] for row in json.loads(out)]


# -- runs list -------------------------------------------------------------------------------
def test_list_filters_and_columns(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-w", str(runs_ws), "runs", "list", "--where", "params.lr < 0.05",
                 "--columns", "params.lr,metrics.loss.train,user.dataset,tags,tags.cnn,"
                 "state,duration", "--json"])
    assert code == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["state"], row["tags"]) == ("b", "completed", ["cnn"])
    columns = row["columns"]
    assert columns["params.lr"] == 0.01 and columns["metrics.loss.train"] == 0.2
    assert (columns["user.dataset"], columns["tags"], columns["tags.cnn"], columns["state"]) \
        == ("mnist", ["cnn"], True, "completed")
    assert columns["duration"] >= 0
    assert row["params"] == {"General/lr": 0.01}


def test_list_table_shows_the_columns(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "-w", runs_ws, "runs", "list",
                           "--columns", "params.lr,user.dataset,metrics.loss.train.min")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split()[-3:] == ["params.lr", "user.dataset", "metrics.loss.train.min"]
    assert len(lines) == 2 and all(line.split()[-3:][1] == "mnist" for line in lines)


def test_list_table_sort_and_count(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(runs_ws), "runs", "list", "--sort", "-metrics.loss.train"]) == 0
    out = capsys.readouterr().out
    assert out.index(" a ") < out.index(" b ")
    assert main(["-w", str(runs_ws), "runs", "list", "--count", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"completed": 2}


def test_list_sorts_by_any_field_and_limits(projects_ws: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ranked = names(capsys, projects_ws, "--sort", "-metrics.accuracy")
    assert ranked[:3] == ["c", "b", "a"] and sorted(ranked[3:]) == ["d", "v"]  # no value: last
    assert names(capsys, projects_ws, "--sort", "metrics.accuracy", "--limit", "2") == ["a", "b"]
    assert names(capsys, projects_ws, "--sort", "-params.lr,name", "--limit", "3") \
        == ["d", "a", "b"]
    assert names(capsys, projects_ws, "--sort", "name", "--limit", "2", "--offset", "1") \
        == ["b", "c"]


def test_list_project_is_a_subtree(projects_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--project vision takes vision/mnist and vision/cifar, not the project visionary."""
    assert sorted(names(capsys, projects_ws, "--project", "vision")) == ["a", "b", "c"]
    assert sorted(names(capsys, projects_ws, "--project", "vision/")) == ["a", "b", "c"]
    assert names(capsys, projects_ws, "--project", "vision/cifar") == ["c"]


@pytest.mark.parametrize("argv", [
    pytest.param(["--tag", "-debug"], id="separate"),
    pytest.param(["--tag=-debug"], id="joined"),
])
def test_list_excludes_a_tag_with_a_dash(projects_ws: Path, capsys: pytest.CaptureFixture[str],
                                         argv: list[str]) -> None:
    assert sorted(names(capsys, projects_ws, "--tag", "cnn", *argv)) == ["a", "b"]


def test_list_state_type_and_where(projects_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert names(capsys, projects_ws, "--type", "testing") == ["v"]
    assert len(names(capsys, projects_ws, "--state", "completed", "--state", "failed")) == 5
    assert names(capsys, projects_ws, "--state", "failed") == []
    assert sorted(names(capsys, projects_ws, "--where", "params.lr = 0.01 and tags has cnn")) \
        == ["b", "c"]


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["--state", "done"], "unknown run state 'done'; choose from draft", id="state"),
    pytest.param(["--type", "train"], "unknown run type 'train'; choose from training",
                 id="type"),
    pytest.param(["--columns", "params.lr,speed"], "unknown column 'speed'; use params.KEY",
                 id="column"),
    pytest.param(["--columns", "metrics.a.b.c.d"], "unknown column 'metrics.a.b.c.d'",
                 id="metric-parts"),
    pytest.param(["--limit", "-3"], "expected a whole number >= 0, got '-3'", id="limit"),
])
def test_list_refuses_bad_options(runs_ws: Path, capsys: pytest.CaptureFixture[str],
                                  argv: list[str], expected: str) -> None:
    code, out, err = run_cli(capsys, "-w", runs_ws, "runs", "list", *argv)
    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err


def test_bad_filter_exits_2_with_the_column(runs_ws: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(runs_ws), "runs", "list", "--where", "metrics.loss.train.avg < 1"]) == 2
    assert "column" in capsys.readouterr().err


def test_rebuild_restores_runs(runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-w", str(runs_ws), "index", "rebuild"]) == 0
    capsys.readouterr()
    assert main(["-w", str(runs_ws), "runs", "list", "--json"]) == 0
    assert sorted(row["name"] for row in json.loads(capsys.readouterr().out)) == ["a", "b"]


# -- naming a run --------------------------------------------------------------------------
def shown_id(capsys: pytest.CaptureFixture[str], ws: Path, name: str) -> str:
    code, out, err = run_cli(capsys, "-w", ws, "runs", "show", name, "--json")
    assert code == 0, err
    return str(json.loads(out)["id"])


def test_a_run_is_named_by_id_prefix_or_project_and_name(
        runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (a,) = Run.query(workspace=runs_ws, name="a")
    assert shown_id(capsys, runs_ws, a.id) == a.id
    assert shown_id(capsys, runs_ws, a.id[:6]) == a.id
    assert shown_id(capsys, runs_ws, a.id[:6].upper()) == a.id
    assert shown_id(capsys, runs_ws, "vision/mnist/a") == a.id


def test_project_and_name_is_the_last_modified_run(
        runs_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newer = make_run(runs_ws, "vision/mnist", "a", params={"lr": 0.3})
    assert shown_id(capsys, runs_ws, "vision/mnist/a") == newer.id


def test_an_ambiguous_prefix_lists_the_runs(runs_ws: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (a,) = Run.query(workspace=runs_ws, name="a")
    twin = a.id[:-1] + ("0" if a.id[-1] != "0" else "1")
    shutil.copytree(runs_ws / "runs" / a.id, runs_ws / "runs" / twin)
    code, out, err = run_cli(capsys, "-w", runs_ws, "runs", "show", a.id[:10])
    assert code == 2 and out == ""
    assert f"{a.id[:10]!r} is the start of several run ids" in err
    assert a.id[:12] in err and twin[:12] in err and "vision/mnist/a" in err
    assert shown_id(capsys, runs_ws, twin) == twin  # the whole id is never ambiguous


@pytest.mark.parametrize(("name", "expected"), [
    pytest.param("ffffffff", "no run id starts with 'ffffffff'", id="prefix"),
    pytest.param("not-hex", "no run id starts with 'not-hex'", id="not-hex"),
    pytest.param("vision/mnist/zz", "its runs are named: a, b.", id="name"),
    pytest.param("nlp/a", "no run named 'a' in project 'nlp'", id="project"),
    pytest.param("vision/", "ends with '/'", id="slash"),
])
def test_an_unknown_run_is_a_clear_error(runs_ws: Path, capsys: pytest.CaptureFixture[str],
                                         name: str, expected: str) -> None:
    code, out, err = run_cli(capsys, "-w", runs_ws, "runs", "show", name)
    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err


def test_a_bare_name_points_to_project_and_name(runs_ws: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A name given where an id is expected: the error names the runs as PROJECT/NAME."""
    make_run(runs_ws, "other", "baseline")
    code, _, err = run_cli(capsys, "-w", runs_ws, "runs", "show", "baseline")
    assert code == 2
    assert "name one as PROJECT/NAME" in err and "other/baseline" in err
    code, _, err = run_cli(capsys, "-w", runs_ws, "runs", "show", "nlp/baseline")
    assert code == 2 and "runs of that name:" in err and "other/baseline" in err
