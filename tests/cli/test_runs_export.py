"""`etude runs export`: one row per run as CSV or Parquet (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .support import run_cli
from .test_runs_cli import projects_ws  # noqa: F401 (a fixture)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_csv_to_stdout(projects_ws: Path,  # noqa: F811
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "-w", projects_ws, "runs", "export", "--project", "vision",
                             "--tag", "-debug", "--sort", "name")
    assert code == 0, err
    header = out.splitlines()[0].split(",")
    assert header[:9] == ["id", "project", "name", "type", "state", "tags", "created",
                          "started", "ended"]
    assert header[-2:] == ["General/lr", "metrics/accuracy/accuracy"]
    found = rows(out)
    assert [(r["project"], r["name"], r["state"]) for r in found] == [
        ("vision/mnist", "a", "completed"), ("vision/mnist", "b", "completed")]
    assert [float(r["General/lr"]) for r in found] == [0.1, 0.01]
    assert [float(r["metrics/accuracy/accuracy"]) for r in found] == [0.5, 0.8]
    assert json.loads(found[0]["tags"]) == ["cnn"] and len(found[0]["id"]) == 32
    assert float(found[0]["ended"]) >= float(found[0]["started"]) >= float(found[0]["created"])


def test_export_csv_to_a_file(projects_ws: Path, tmp_path: Path,  # noqa: F811
                              capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "runs.csv"
    code, out, err = run_cli(capsys, "-w", projects_ws, "runs", "export", "-o", target)
    assert code == 0 and out == ""
    assert f"Wrote 5 runs to {target}." in err
    assert sorted(r["name"] for r in rows(target.read_text())) == ["a", "b", "c", "d", "v"]


def test_export_of_no_run_is_a_header(projects_ws: Path,  # noqa: F811
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "-w", projects_ws, "runs", "export", "--state", "failed")
    assert code == 0
    assert out.splitlines() == ["id,project,name,type,state,tags,created,started,ended"]


def test_export_parquet(projects_ws: Path, tmp_path: Path,  # noqa: F811
                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd  # type: ignore[import-untyped]

    target = tmp_path / "runs.parquet"
    code, _, err = run_cli(capsys, "-w", projects_ws, "runs", "export", "--format", "parquet",
                           "-o", target)
    assert code == 0, err
    frame = pd.read_parquet(target).set_index("name").sort_index()
    assert list(frame.index) == ["a", "b", "c", "d", "v"]
    assert list(frame.loc["c", "tags"]) == ["cnn", "debug"]
    assert frame.loc["d", "General/lr"] == 0.5


@pytest.mark.parametrize(("argv", "expected"), [
    pytest.param(["--format", "parquet"], "give the file to write with -o FILE", id="no-file"),
    pytest.param(["--format", "xlsx"], "invalid choice: 'xlsx'", id="format"),
    pytest.param(["--where", "params.lr <"], "bad filter", id="filter"),
])
def test_export_refuses(projects_ws: Path, capsys: pytest.CaptureFixture[str],  # noqa: F811
                        argv: list[str], expected: str) -> None:
    code, out, err = run_cli(capsys, "-w", projects_ws, "runs", "export", *argv)
    assert code == 2 and out == ""
    assert expected in err and "Traceback" not in err


def test_parquet_without_pyarrow_says_what_to_install(projects_ws: Path,  # noqa: F811
                                                      tmp_path: Path) -> None:
    """In a Python where pyarrow cannot be imported (hidden from this process)."""
    code = ("import sys; sys.modules['pyarrow'] = None; from etude.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run(
        [sys.executable, "-c", code, "-w", str(projects_ws), "runs", "export", "--format",
         "parquet", "-o", str(tmp_path / "runs.parquet")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "needs pyarrow" in result.stderr and "pip install pyarrow" in result.stderr
    assert not (tmp_path / "runs.parquet").exists()
