"""`etude jobs ...` on a pydantic-infra cache folder used as a workspace (issue 13)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .support import list_json, run_cli

MODELS = """
from collections.abc import Iterator, Sequence

import pydantic

from etude.infra import MapInfra, TaskInfra


class Featurize(pydantic.BaseModel):
    arch: str = "ResNet"
    infra: MapInfra = MapInfra(version="1")

    @infra.apply(item_uid=str)
    def embed(self, items: Sequence[int]) -> Iterator[int]:
        for item in items:
            yield item * 2


class Train(pydantic.BaseModel):
    arch: str = "ResNet"
    lr: float = 0.1
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def fit(self) -> float:
        if self.lr < 0:
            raise KeyError("lr")
        print("fitting", self.arch, flush=True)
        return self.lr


class Evaluate(pydantic.BaseModel):
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def score(self) -> int:
        return 1
"""

MAKE = """
import sys

from models import Evaluate, Featurize, Train

folder = sys.argv[1]
local = {"folder": folder, "cluster": "local"}
assert list(Featurize(infra=local).embed(range(7))) == [0, 2, 4, 6, 8, 10, 12]
assert Train(infra={"folder": folder}).fit() == 0.1  # in process (cluster=None)
assert Train(arch="VGG", lr=0.2, infra=local).fit() == 0.2
assert Train(arch="VGG", lr=0.5, infra={"folder": folder}).fit() == 0.5
assert Evaluate(infra=local).score() == 1
try:
    Train(lr=-1.0, infra={"folder": folder}).fit()  # fails in process
except KeyError:
    pass
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder made by real job processes: a MapInfra cache (one chunk job), three
    TaskInfra results computed in process (two done, one failed), two by local jobs."""
    root = tmp_path_factory.mktemp("infra-cli")
    (root / "models.py").write_text(textwrap.dedent(MODELS))
    (root / "make.py").write_text(textwrap.dedent(MAKE))
    folder = root / "cache"
    result = subprocess.run(
        [sys.executable, "make.py", str(folder)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def _tree(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")} - {
        path.relative_to(folder).as_posix() for path in (folder / ".etude").rglob("*")
    }


def test_clean_never_deletes_infra_caches_or_done_jobs(cache, capsys, tmp_path):
    """A MapInfra uid folder is a cache, not an unscheduled job; in-process results are
    neither problems nor cleanable; only the failed computation goes."""
    cache = Path(shutil.copytree(cache, tmp_path / "cache"))
    before = _tree(cache)
    status, out, err = run_cli(capsys, "jobs", "clean", "--yes", "-w", cache)
    assert status == 0, out + err
    assert "Deleted 1 folders." in out and "unscheduled" not in out and "unreadable" not in out
    gone = before - _tree(cache)
    assert gone and all(path.startswith("models.Train.fit,1/lr=-1-") for path in gone), gone
    items = [path for path in _tree(cache) if path.startswith("models.Featurize.embed,1/")]
    assert any("/items/" in path for path in items) and any("/jobs/" in path for path in items)


def test_infra_jobs_are_listed_without_false_problems(cache, capsys):
    rows = list_json(capsys, cache)
    assert {row["task"] for row in rows} == {
        "models.Featurize.embed",
        "models.Train.fit",
        "models.Evaluate.score",
    }
    assert all(row["state"] in ("done", "error") for row in rows), rows
    assert [row["problems"] for row in rows if row["problems"]] == []


def _folder_of(cache: Path, method: str, start: str) -> Path:
    (found,) = [path for path in (cache / method).iterdir() if path.name.startswith(start)]
    return found


def test_log_of_an_infra_job_folder_prints_job_out(cache, capsys):
    folder = _folder_of(cache, "models.Train.fit,1", "arch=VGG,lr=0.2")
    status, out, err = run_cli(capsys, "jobs", "log", "--stdout", folder)
    assert status == 0 and "fitting VGG" in out and "no log" not in err


def test_every_listed_id_names_its_job(cache, capsys, monkeypatch):
    """Whole uids, not 12 characters of them (`arch=VGG,lr=` twice); the folder when a uid
    repeats (`default`)."""
    monkeypatch.setenv("COLUMNS", "250")  # rich would shorten a wide table's cells
    status, out, _ = run_cli(capsys, "jobs", "list", "-w", cache)
    assert status == 0
    shown = [line.split()[0] for line in out.splitlines()[1:] if line.strip()]
    paths = sorted(row["path"] for row in list_json(capsys, cache))
    assert len(shown) == len(set(shown)) == 6, out
    assert "models.Train.fit,1/default" in shown and "models.Evaluate.score,1/default" in shown
    found = []
    for reference in shown:
        status, out, err = run_cli(capsys, "jobs", "path", "-w", cache, reference)
        assert status == 0, err
        found.append(out.strip())
    assert sorted(found) == paths


@pytest.mark.parametrize("reference", ["arch=VGG,lr=0.2", "arch=vgg,lr=0.2", "ARCH=VGG,LR=0.2"])
def test_infra_uids_are_references_in_their_case(cache, capsys, reference):
    status, out, err = run_cli(capsys, "jobs", "path", "-w", cache, reference)
    assert status == 0, err
    assert Path(out.strip()) == _folder_of(cache, "models.Train.fit,1", "arch=VGG,lr=0.2")


def test_unknown_reference_names_the_workspace(cache, capsys):
    status, _, err = run_cli(capsys, "jobs", "path", "-w", cache, "arch=Nothing")
    assert status == 2 and f"in {cache}." in err and "/jobs" not in err


def test_a_uid_several_methods_share_is_named_by_its_folder(cache, capsys):
    status, _, err = run_cli(capsys, "jobs", "path", "-w", cache, "default")
    assert status == 2 and "give more characters" not in err
    assert "models.Evaluate.score,1/default" in err and "name one by its folder" in err
    status, out, _ = run_cli(capsys, "jobs", "path", "-w", cache, "models.Evaluate.score,1/default")
    assert status == 0 and out.strip() == str(cache / "models.Evaluate.score,1" / "default")
