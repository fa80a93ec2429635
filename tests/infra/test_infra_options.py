"""Infra fields shared with exca: keep_in_ram, permissions, Slurm resources, workdir paths."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pydantic
import pytest
from infra_models import Counted, Squares, log_lines

from etude.infra import ReadOnlyError, TaskInfra, WorkDir
from etude.infra.jobs import slurm_options
from etude.infra.permissions import new_mode


def test_keep_in_ram_serves_a_new_object_without_the_folder(tmp_path: Path) -> None:
    infra = {"folder": tmp_path / "cache", "keep_in_ram": True}
    first = Counted(x=21, log=str(tmp_path / "log"), infra=infra)
    assert first.process() == 42
    shutil.rmtree(tmp_path / "cache")
    again = Counted(x=21, infra={**infra, "mode": "read-only"})
    assert again.process() == 42  # from the process's memory
    assert len(log_lines(tmp_path / "log")) == 1
    with pytest.raises(ReadOnlyError):
        Counted(x=21, infra={"folder": tmp_path / "cache", "mode": "read-only"}).process()


def test_keep_in_ram_without_folder_computes_once_per_process(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    for _ in range(2):
        assert Counted(x=22, log=log, infra={"keep_in_ram": True}).process() == 44
    assert len(log_lines(tmp_path / "log")) == 1
    Counted(x=22, log=log).process()  # without keep_in_ram: memory of the object only
    assert len(log_lines(tmp_path / "log")) == 2


def test_keep_in_ram_is_dropped_by_clear_job_and_force(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    task = Counted(x=23, log=log, infra={"folder": tmp_path / "cache", "keep_in_ram": True})
    task.process()
    task.infra.clear_job()
    Counted(x=23, log=log, infra={"folder": tmp_path / "cache", "keep_in_ram": True}).process()
    forced = {"folder": tmp_path / "cache", "keep_in_ram": True, "mode": "force"}
    Counted(x=23, log=log, infra=forced).process()
    assert len(log_lines(tmp_path / "log")) == 3


def test_map_keep_in_ram_reads_items_from_memory(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    infra = {"folder": tmp_path / "cache", "keep_in_ram": True}
    assert list(Squares(log=log, infra=infra).process([1, 2, 2])) == [1, 4, 4]
    shutil.rmtree(tmp_path / "cache")
    ram = Squares(log=log, infra={**infra, "mode": "read-only"})
    assert list(ram.process([2, 1])) == [4, 1]
    assert list(Squares(log=log, infra=infra).process([3, 1])) == [9, 1]
    assert log_lines(tmp_path / "log") == ["1", "2", "3"]


def test_permissions_int_applies_to_cache_folders_and_files(tmp_path: Path) -> None:
    task = Counted(x=24, infra={"folder": tmp_path / "cache", "permissions": 0o770})
    task.process()
    folder = task.infra.uid_folder()
    assert folder is not None
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o770
    for path in [folder, *folder.rglob("*")]:
        expected = 0o770 if path.is_dir() else 0o660
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_permissions_symbolic_in_a_job_process_and_map_items(tmp_path: Path) -> None:
    infra = {"folder": tmp_path / "cache", "permissions": "g+rwX,o-rwx", "cluster": "local"}
    mapper = Squares(infra=infra)
    assert list(mapper.process([1, 2])) == [1, 4]
    folder = mapper.infra.uid_folder()
    assert folder is not None
    written = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.parent.name == "items" for p in written)
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o060 == 0o060 and mode & 0o007 == 0, (path, oct(mode))
        assert bool(mode & 0o010) == path.is_dir(), (path, oct(mode))


@pytest.mark.parametrize(
    "permissions,mode,is_dir,expected",
    [
        pytest.param(0o775, 0o600, True, 0o775, id="int-dir"),
        pytest.param(0o775, 0o600, False, 0o664, id="int-file"),
        pytest.param(0o775, 0o700, False, 0o775, id="int-executable-file"),
        pytest.param("a+rwx", 0o600, False, 0o777, id="exca-a+rwx"),
        pytest.param("g+rwX", 0o600, False, 0o660, id="X-file"),
        pytest.param("g+rwX", 0o700, True, 0o770, id="X-dir"),
        pytest.param("o=r,u-w", 0o666, False, 0o464, id="equal-minus"),
    ],
)
def test_permission_modes(permissions: int | str, mode: int, is_dir: bool, expected: int) -> None:
    assert new_mode(permissions, mode, is_dir) == expected


@pytest.mark.parametrize(
    "permissions",
    [pytest.param("g+q", id="bad-letter"), pytest.param(0o17777, id="too-big"),
     pytest.param(True, id="bool")],
)
def test_bad_permissions_are_refused(permissions: object) -> None:
    with pytest.raises(pydantic.ValidationError, match="permissions"):
        TaskInfra(permissions=permissions)  # type: ignore[arg-type]


def test_slurm_resources_map_to_sbatch_options() -> None:
    infra = TaskInfra(
        tasks_per_node=4, nodes=2, slurm_setup=["module load cuda"],
        slurm_additional_parameters={"mail_type": "END"},
    )
    options = slurm_options(infra, "Train.process")
    assert options["nodes"] == 2
    assert options["extra_options"] == ["--mail-type=END", "--ntasks-per-node=4"]
    assert options["setup"] == ["module load cuda"]


def test_workdir_accepts_paths() -> None:
    infra = TaskInfra(workdir={"copied": [Path("src/pkg"), "mylib"], "folder": Path("code")})
    assert infra.workdir == WorkDir(copied=["src/pkg", "mylib"], folder=Path("code"))
