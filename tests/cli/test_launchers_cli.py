"""`etude launchers list|find`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from etude.cli import main

LAUNCHERS = """
launchers:
  - {name: laptop, type: direct, options: {max_jobs: 2}, limits: {duration: 2h, gpus: 0}}
  - {name: cluster, type: slurm, options: {partition: gpu}, limits: {duration: 2d, gpus: 8}}
"""


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "etude").mkdir()
    path = tmp_path / "etude" / "launchers.yaml"
    path.write_text(LAUNCHERS)
    return path


def test_find_shows_the_choice_and_what_was_skipped(capsys):
    assert main(["launchers", "find", "duration=4h & gpu(mem=24G)*2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "cluster (slurm) runs 'duration=4:00:00 & gpu(mem=24G)*2'"
    assert "skipped laptop: duration 4:00:00 is over its limit 2:00:00" in out
    assert "SlurmLauncher(--partition=gpu)" in out


def test_find_json(capsys):
    assert main(["launchers", "find", "duration=1h", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chosen"]["name"] == "laptop"


def test_find_without_fit_exits_1_with_reasons(capsys):
    assert main(["launchers", "find", "duration=3d"]) == 1
    err = capsys.readouterr().err
    assert "laptop (direct): duration" in err and "cluster (slurm): duration" in err


def test_find_with_bad_requirements_is_a_usage_error(capsys):
    assert main(["launchers", "find", "duration=soon"]) == 2
    assert "duration 'soon'" in capsys.readouterr().err


def test_list_reads_the_file(capsys, config: Path):
    assert main(["launchers", "list", "--json"]) == 0
    names = [entry["name"] for entry in json.loads(capsys.readouterr().out)]
    assert names == ["laptop", "cluster"]
    config.write_text("launchers:\n  - {type: nope}\n")
    assert main(["launchers", "list"]) == 2
    assert "expected one of direct, slurm" in capsys.readouterr().err
