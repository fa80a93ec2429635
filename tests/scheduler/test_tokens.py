"""Tokens: jobs needing units of a named resource wait until enough are free, workspace-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xp_tasks as t

from etude import ExperimentFailed, experiment
from etude.launchers import DirectLauncher

HERE = Path(__file__).parent


def intervals(log: Path) -> dict[str, tuple[float, float]]:
    """Each Slow job's (start, end) times, by name."""
    starts: dict[str, float] = {}
    spans = {}
    for line in log.read_text().splitlines():
        word, name, when = line.split()
        if word == "start":
            starts[name] = float(when)
        else:
            spans[name] = (starts[name], float(when))
    return spans


def most_at_once(spans: dict[str, tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_jobs_needing_a_token_never_exceed_its_size(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with experiment(workspace, "xp", launcher=DirectLauncher(max_jobs=4)) as xp:
        cpu = xp.token("cpu", 3)
        for name in "abcd":
            cpu(2 if name in "ab" else 1, t.Slow.C(name=name, seconds=0.6, log=log)).submit()
    spans = intervals(log)
    assert len(spans) == 4
    # a and b need 2 of 3 units each: never together; c and d need 1.
    a, b = spans["a"], spans["b"]
    assert a[1] <= b[0] or b[1] <= a[0]
    assert most_at_once(spans) <= 2


SCRIPT = """
import sys
import xp_tasks as t
from etude import experiment
from etude.launchers import DirectLauncher

workspace, log, name = sys.argv[1:]
with experiment(workspace, "xp-" + name, launcher=DirectLauncher(max_jobs=2)) as xp:
    gpu = xp.token("gpu", 1)
    for i in range(2):
        gpu(1, t.Slow.C(name=f"{name}{i}", seconds=0.4, log=log)).submit()
"""


@pytest.mark.timeout(120)
def test_a_token_is_shared_by_experiments_of_the_workspace(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    script = tmp_path / "xp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    processes = [
        subprocess.Popen([sys.executable, str(script), str(workspace), str(log), name], env=env)
        for name in ("x", "y")
    ]
    assert [p.wait(timeout=100) for p in processes] == [0, 0]
    spans = intervals(log)
    assert len(spans) == 4 and most_at_once(spans) == 1
    assert sorted((workspace / ".etude" / "tokens" / "gpu").iterdir())[0].name == "slot-0.lock"


@pytest.mark.timeout(60)
def test_a_killed_job_gives_its_units_back(workspace: Path, tmp_path: Path):
    log = tmp_path / "log"
    with pytest.raises(ExperimentFailed, match="killed"):
        with experiment(workspace, "xp", launcher=DirectLauncher(max_jobs=2)) as xp:
            only = xp.token("only", 1)
            only(1, t.SelfKill.C(x=1)).submit()
            only(1, t.Slow.C(name="after", seconds=0.1, log=log)).submit()
    assert len(intervals(log)) == 1  # ran once the killed job's unit was free


@pytest.mark.parametrize(
    ("name", "size", "units", "message"),
    [
        pytest.param("a/b", 1, 1, "use letters", id="bad-name"),
        pytest.param("cpu", 0, 1, "size must be", id="bad-size"),
        pytest.param("cpu", 2, 3, "ask for 1 to 2 units", id="too-many-units"),
    ],
)
def test_bad_token_uses_are_refused(tmp_path: Path, name, size, units, message):
    with experiment(tmp_path, "xp", dry_run=True) as xp:
        with pytest.raises(ValueError, match=message):
            xp.token(name, size)(units, t.Slow.C(name="a", log=tmp_path / "log"))
