"""`etude runs delete`: asks, refuses what must not go, and leaves folders and index in step
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from etude.store import open_store
from etude.store.schema import run_params, runs
from etude.tracking import Run
from etude.tracking.query import close_indexes

from .support import job_ids, run_cli
from .test_runs_cli import QUIET, make_run


@pytest.fixture
def two(tmp_path: Path, store_env: dict[str, str]) -> Iterator[tuple[Path, Run, Run]]:
    ws = tmp_path / "ws"
    a = make_run(ws, "p", "a", params={"lr": 0.1, "epochs": 2})
    b = make_run(ws, "p", "b", params={"lr": 0.2, "epochs": 2})
    yield ws, a, b
    close_indexes()


def indexed(ws: Path) -> tuple[set[str], int]:
    """(run ids, parameter rows) in the index as it is now (no reconciling first)."""
    store = open_store(ws)
    try:
        with store.engine.connect() as connection:
            ids = set(connection.execute(sa.select(runs.c.id)).scalars())
            params = connection.execute(sa.select(sa.func.count()).select_from(run_params))
            return ids, int(params.scalar_one())
    finally:
        store.close()


def listed(capsys: pytest.CaptureFixture[str], ws: Path) -> list[str]:
    code, out, err = run_cli(capsys, "-w", ws, "runs", "list", "--json")
    assert code == 0, err
    return sorted(row["name"] for row in json.loads(out))


def test_delete_removes_the_folder_and_the_index_rows(
        two: tuple[Path, Run, Run], capsys: pytest.CaptureFixture[str]) -> None:
    ws, a, b = two
    assert listed(capsys, ws) == ["a", "b"]  # the index now holds both
    assert indexed(ws) == ({a.id, b.id}, 4)
    code, out, err = run_cli(capsys, "-w", ws, "runs", "delete", "p/a", "--yes")
    assert code == 0, err
    assert out == "Deleted 1 run.\n" and a.id[:12] in err
    assert not (ws / "runs" / a.id).exists() and (ws / "runs" / b.id).exists()
    assert indexed(ws) == ({b.id}, 2)  # the command itself made the index right
    assert listed(capsys, ws) == ["b"]
    assert [p.name for p in (ws / "runs").iterdir() if p.name.startswith(".deleting")] == []


def test_delete_several_with_json(two: tuple[Path, Run, Run],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    ws, a, b = two
    code, out, _ = run_cli(capsys, "-w", ws, "runs", "delete", a.id[:8], "p/b", "-y", "--json")
    assert code == 0
    assert json.loads(out) == {"deleted": [a.id, b.id], "kept": []}
    assert indexed(ws) == (set(), 0) and listed(capsys, ws) == []


def test_delete_without_a_terminal_needs_yes(two: tuple[Path, Run, Run],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ws, a, _ = two
    code, out, err = run_cli(capsys, "-w", ws, "runs", "delete", "p/a")
    assert code == 2 and out == ""
    assert "no terminal to confirm on; pass --yes" in err
    assert (ws / "runs" / a.id).exists() and listed(capsys, ws) == ["a", "b"]


@pytest.mark.parametrize(("answer", "code", "kept"), [
    pytest.param("y", 0, False, id="yes"),
    pytest.param("n", 1, True, id="no"),
])
def test_delete_asks_on_a_terminal(two: tuple[Path, Run, Run], answer: str, code: int,
                                   kept: bool) -> None:
    ws, a, _ = two
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "etude.cli", "-w", str(ws), "runs", "delete", "p/a"],
            stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(master, f"{answer}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert process.returncode == code, err
    assert "Delete 1 run? [y/N]" in err
    assert (ws / "runs" / a.id).exists() == kept
    assert (a.id in indexed(ws)[0]) == kept
    assert out == ("" if kept else "Deleted 1 run.\n")


def test_delete_refuses_a_running_run(two: tuple[Path, Run, Run],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ws, a, _ = two
    live = Run.init(project="p", name="live", workspace=ws, reuse_last=False,
                    **QUIET)  # type: ignore[arg-type]
    live.logger.flush()  # its first files now, not 0.05 s later: the CLI runs in this process
    try:
        code, out, err = run_cli(capsys, "-w", ws, "runs", "delete", "p/live", "p/a", "--yes")
        assert code == 2 and out == ""
        assert f"{live.id[:12]} (p/live) is running: stop its process" in err
        assert "nothing deleted" in err and "Traceback" not in err
        assert live.folder.exists() and (ws / "runs" / a.id).exists()
    finally:
        live.close()
    code, _, err = run_cli(capsys, "-w", ws, "runs", "delete", "p/live", "--yes")
    assert code == 0, err
    assert not live.folder.exists()


def test_delete_a_published_run_needs_force(two: tuple[Path, Run, Run],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    ws, a, _ = two
    Run.get(a.id, workspace=ws).publish()
    code, _, err = run_cli(capsys, "-w", ws, "runs", "delete", "p/a", "--yes")
    assert code == 2 and "is published (read-only); pass --force" in err
    code, _, err = run_cli(capsys, "-w", ws, "runs", "delete", "p/a", "--yes", "--force")
    assert code == 0, err
    assert listed(capsys, ws) == ["b"]


def test_a_deleted_run_stays_deleted_after_a_rebuild(
        two: tuple[Path, Run, Run], capsys: pytest.CaptureFixture[str]) -> None:
    ws, a, _ = two
    assert run_cli(capsys, "-w", ws, "runs", "delete", a.id, "--yes")[0] == 0
    assert run_cli(capsys, "-w", ws, "index", "rebuild")[0] == 0
    assert listed(capsys, ws) == ["b"]


@pytest.fixture
def job_ws(store_env: dict[str, str], demo: Path) -> Iterator[Path]:
    yield demo
    close_indexes()


def test_a_job_run_belongs_to_its_job(job_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job_id = job_ids(job_ws)["x2"]
    code, out, err = run_cli(capsys, "-w", job_ws, "runs", "delete", job_id[:12], "--yes")
    assert code == 2 and out == ""
    assert "it belongs to the job" in err and "etude jobs clean" in err
    assert any(path.name == job_id for path in (job_ws / "jobs").glob("*/*"))
