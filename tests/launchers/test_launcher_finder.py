"""launchers.yaml: parsing, the first launcher that fits, and why none fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from etude.launchers import (
    DirectLauncher,
    LaunchersFileError,
    NoLauncherFits,
    SlurmLauncher,
    find_launcher,
    load_launchers,
)
from etude.launchers.finder import find_entry
from etude.launchers.requirements import parse_requirements

LAUNCHERS = """
launchers:
  - name: laptop
    type: direct
    options: {max_jobs: 2}
    limits: {duration: 2h, cores: 8, mem: 16G, gpus: 1, gpu_mem: 8G}
  - name: cluster-gpu
    type: slurm
    options: {partition: gpu, time: 60}
    limits: {duration: 2d, cores: 32, mem: 256G, gpus: 8, gpu_mem: 40G}
"""


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "etude").mkdir()
    return tmp_path / "etude" / "launchers.yaml"


@pytest.mark.parametrize(
    ("needs", "chosen"),
    [
        pytest.param("duration=1h", "laptop", id="short-job-stays-local"),
        pytest.param("duration=4h & gpu(mem=24G)*2", "cluster-gpu", id="long-gpu-job"),
        pytest.param("cpu(cores=16)", "cluster-gpu", id="too-many-cores-for-laptop"),
        pytest.param("gpu(mem=6G)", "laptop", id="small-gpu"),
        pytest.param("gpu(mem=12G)", "cluster-gpu", id="gpu-memory"),
    ],
)
def test_first_launcher_that_fits_is_chosen(config_home: Path, needs: str, chosen: str):
    config_home.write_text(LAUNCHERS)
    assert find_entry(parse_requirements(needs), load_launchers()).name == chosen


def test_chosen_launcher_is_built_once_with_its_options(config_home: Path):
    config_home.write_text(LAUNCHERS)
    first = find_launcher("duration=4h")
    assert isinstance(first, SlurmLauncher) and first.partition == "gpu"
    assert first.options()[0] == "--time=60"
    assert find_launcher("duration=5h") is first, "jobs on one entry share its launcher"
    local = find_launcher("duration=1h")
    assert isinstance(local, DirectLauncher) and local.max_jobs == 2


def test_no_fit_says_why_for_each_launcher(config_home: Path):
    config_home.write_text(LAUNCHERS)
    with pytest.raises(NoLauncherFits) as caught:
        find_launcher("duration=4d")
    message = str(caught.value)
    assert "laptop (direct): duration 96:00:00 is over its limit 2:00:00" in message
    assert "cluster-gpu (slurm): duration 96:00:00 is over its limit 48:00:00" in message


def test_a_launcher_without_gpu_limit_offers_no_gpu(config_home: Path):
    config_home.write_text("launchers:\n  - {name: cpu, type: direct}\n")
    with pytest.raises(NoLauncherFits, match="1 GPU"):
        find_launcher("gpu(mem=1G)")
    assert isinstance(find_launcher("duration=30d & cpu(cores=64)"), DirectLauncher)


def test_hosts_restrict_a_launcher(config_home: Path):
    config_home.write_text(
        "launchers:\n  - {name: elsewhere, type: direct, hosts: ['no-such-host-*']}\n"
    )
    with pytest.raises(NoLauncherFits, match="only on hosts no-such-host-"):
        find_launcher("duration=1h")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("launchers: 3\n", "top-level 'launchers:' list", id="not-a-list"),
        pytest.param("launchers:\n  - {type: kubernetes}\n", "expected one of direct, slurm",
                     id="bad-type"),
        pytest.param("launchers:\n  - {type: direct, limit: {}}\n", "unknown key(s) limit",
                     id="typo-key"),
        pytest.param("launchers:\n  - {type: direct, limits: {memory: 4G}}\n",
                     "unknown limit(s) memory", id="typo-limit"),
        pytest.param("launchers:\n  - {type: direct, limits: {mem: lots}}\n", "size 'lots'",
                     id="bad-size"),
        pytest.param("launchers: [\n", "not valid YAML", id="yaml"),
    ],
)
def test_bad_launchers_file_is_a_clear_error(config_home: Path, text: str, expected: str):
    config_home.write_text(text)
    with pytest.raises(LaunchersFileError) as caught:
        load_launchers()
    assert expected in str(caught.value) and str(config_home) in str(caught.value)


def test_bad_launcher_options_name_the_entry(config_home: Path):
    config_home.write_text("launchers:\n  - {name: c, type: slurm, options: {mem: lots}}\n")
    with pytest.raises(LaunchersFileError, match="launcher 'c': bad options"):
        find_launcher("duration=1h")
