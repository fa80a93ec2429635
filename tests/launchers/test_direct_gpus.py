"""GPUs on the direct launcher: each job that requires GPUs gets its own through
CUDA_VISIBLE_DEVICES, and waits for them.

This machine has no GPU: the tests put a fake `nvidia-smi` on PATH (it prints four 16 GiB
GPUs, as `nvidia-smi --query-gpu=index,memory.total --format=csv,noheader,nounits` does) and
make NVML unavailable (a `pynvml` module that fails to import, first on the path). The job
processes are real.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from etude.launchers import DirectLauncher, find_launcher
from etude.launchers.gpus import GPU, GPUPool, detect_gpus
from etude.launchers.requirements import parse_requirements

FAKE_SMI = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
printf '0, 16384\\n1, 16384\\n2, 16384\\n3, 16384\\n'
"""


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Four fake GPUs through `nvidia-smi`, NVML unavailable; returns the environment to use."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    no_nvml = tmp_path / "no-nvml"
    no_nvml.mkdir()
    (no_nvml / "pynvml.py").write_text("raise ImportError('NVML made unavailable by the test')\n")
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    pythonpath = os.pathsep.join(filter(None, [str(no_nvml), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails in this process too
    return {"PATH": path, "PYTHONPATH": pythonpath}


RECORDING_TASK = """
import json, os, sys, time
from pathlib import Path
from etude import Param, Task, experiment
from etude.launchers import DirectLauncher

class Train(Task):
    seed: Param[int]

    def execute(self):
        start = time.time()
        time.sleep(0.6)
        Path("gpu.json").write_text(json.dumps({
            "seed": self.seed,
            "devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "start": start,
            "end": time.time(),
        }))
"""


def read_records(workspace: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(workspace.glob("jobs/*/*/gpu.json"))]


def test_six_one_gpu_jobs_on_four_gpus_never_overlap(run_script, workspace, fake_gpus):
    """6 jobs needing one GPU each, 6 job slots, 4 (fake) GPUs: every job runs, alone on its
    GPU; two jobs that were given the same GPU ran one after the other."""
    run_script(
        RECORDING_TASK
        + """
if __name__ == "__main__":
    with experiment(sys.argv[1], "gpus", launcher=DirectLauncher(max_jobs=6)):
        for seed in range(6):
            Train.C(seed=seed).submit(requirements="gpu(mem=8G)")
""",
        str(workspace),
        env=fake_gpus,
    )
    records = read_records(workspace)
    assert sorted(r["seed"] for r in records) == list(range(6)), "all six jobs ran"
    assert all(r["devices"] in {"0", "1", "2", "3"} for r in records), records
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            if a["devices"] == b["devices"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)
    starts = sorted(r["start"] for r in records)
    concurrent = max(sum(r["start"] <= t < r["end"] for r in records) for t in starts)
    assert concurrent <= 4, "at most one job per GPU at a time"


def test_gpus_restricts_the_devices_handed_out(run_script, workspace, fake_gpus):
    """`DirectLauncher(gpus=[2, 3])` hands out only GPUs 2 and 3; a two-GPU job gets both."""
    run_script(
        RECORDING_TASK
        + """
if __name__ == "__main__":
    with experiment(sys.argv[1], "gpus", launcher=DirectLauncher(max_jobs=4, gpus=[2, 3])):
        for seed in range(3):
            Train.C(seed=seed).submit(requirements="gpu()")
        Train.C(seed=9).submit(requirements="gpu()*2")
""",
        str(workspace),
        env=fake_gpus,
    )
    devices = {r["seed"]: r["devices"] for r in read_records(workspace)}
    assert {devices[s] for s in range(3)} <= {"2", "3"}
    assert devices[9] == "2,3"
    recorded = [
        json.loads(p.read_text()).get("gpus")
        for p in workspace.glob("jobs/*/*/.etude/process.json")
    ]
    assert sorted(map(len, recorded)) == [1, 1, 1, 2], "process.json records the GPUs given"


def test_jobs_without_gpus_keep_the_environment_unless_hide_gpus(
    run_script, workspace, fake_gpus
):
    env = {**fake_gpus, "CUDA_VISIBLE_DEVICES": "1"}
    source = RECORDING_TASK + """
if __name__ == "__main__":
    hide = sys.argv[2] == "hide"
    with experiment(sys.argv[1], "gpus", launcher=DirectLauncher(hide_gpus=hide)):
        Train.C(seed=int(hide)).submit()
"""
    run_script(source, str(workspace), "keep", env=env)
    run_script(source, str(workspace), "hide", env=env)
    devices = {r["seed"]: r["devices"] for r in read_records(workspace)}
    assert devices == {0: "1", 1: ""}


def test_a_job_no_gpu_can_hold_fails_with_the_reason(run_script, workspace, fake_gpus):
    result = run_script(
        RECORDING_TASK
        + """
if __name__ == "__main__":
    with experiment(sys.argv[1], "gpus"):
        Train.C(seed=0).submit(requirements="gpu(mem=32G)")
""",
        str(workspace),
        env=fake_gpus,
        check=False,
    )
    assert result.returncode != 0
    failed = next(workspace.glob("jobs/*/*/.etude/failed.json"))
    message = json.loads(failed.read_text())["message"]
    assert "needs 1 GPU(s) with 32G; this launcher has 0 such GPU(s)" in message, message


def test_gpus_are_found_with_nvidia_smi(fake_gpus, tmp_path: Path):
    assert detect_gpus() == [GPU(i, 16 * 1024**3) for i in range(4)]
    assert "--query-gpu=index,memory.total" in (tmp_path / "fake-bin" / "calls").read_text()


def test_detection_keeps_the_gpus_cuda_visible_devices_names(fake_gpus, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert [gpu.index for gpu in detect_gpus()] == [1, 3]


def test_shared_jobs_share_a_gpu_while_their_memory_fits():
    pool = GPUPool([GPU(0, 16 * 1024**3)])
    shared = parse_requirements("gpu(mem=6G, shared=yes)")
    alone = parse_requirements("gpu()")
    assert pool.reserve("a", shared) == (0,)
    assert pool.reserve("b", shared) == (0,)
    assert pool.reserve("c", shared) is None, "18G would not fit in 16G"
    assert pool.reserve("d", alone) is None, "a job that does not share waits"
    pool.release("a")
    pool.release("b")
    assert pool.reserve("d", alone) == (0,)
    assert pool.reserve("a", shared) is None


@pytest.mark.parametrize(
    ("gpus", "message"),
    [
        pytest.param("0,1", "expected gpus=[0, 1]", id="a-string"),
        pytest.param([0, -1], "GPU index -1", id="negative"),
        pytest.param({0: "lots"}, "GPU 0: size 'lots'", id="bad-memory"),
        pytest.param([1, 1], "given twice", id="twice"),
    ],
)
def test_bad_gpu_lists_are_refused(gpus, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DirectLauncher(gpus=gpus)


def test_the_finder_uses_the_gpus_launchers_yaml_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "etude" / "launchers.yaml"
    path.parent.mkdir()
    path.write_text(
        """
launchers:
  - name: workstation
    type: direct
    options: {gpus: {0: 24G, 1: 24G}}
  - name: cpu-only
    type: direct
"""
    )
    chosen = find_launcher("gpu(mem=20G)*2", path)
    assert isinstance(chosen, DirectLauncher)
    assert [(g.index, g.memory) for g in chosen.gpu_pool().gpus.values()] == [
        (0, 24 * 1024**3),
        (1, 24 * 1024**3),
    ]
    with pytest.raises(LookupError, match=r"workstation .*: GPU memory 40G is over its limit 24G"):
        find_launcher("gpu(mem=40G)", path)
