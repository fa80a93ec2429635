"""A dry run names, for each new job, the closest done job of its task and the values that
differ: from the index when there is one, from the folders otherwise, writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """
import os, sys
from etude import Config, Param, Task, experiment

class Model(Config):
    hidden: Param[int] = 64

class Learn(Task):
    lr: Param[float]
    model: Param[Model]

    def execute(self):
        pass

if __name__ == "__main__":
    dry = os.environ.get("DRY") == "1"
    with experiment(sys.argv[1], "xp", dry_run=dry) as xp:
        if dry:
            Learn.C(lr=0.01, model=Model.C(hidden=128)).submit()  # new
            Learn.C(lr=0.01, model=Model.C()).submit()            # done before
            print("reused flags:", [job.reused for job in xp.jobs])
        else:
            Learn.C(lr=0.01, model=Model.C()).submit()
            Learn.C(lr=0.5, model=Model.C(hidden=32)).submit()
"""


def run(tmp_path: Path, workspace: Path, dry: bool) -> str:
    script = tmp_path / "learn.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**os.environ, "DRY": "1" if dry else "0"}
    result = subprocess.run(
        [sys.executable, str(script), str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def snapshot(workspace: Path) -> dict[str, float]:
    return {
        str(path): path.stat().st_mtime
        for path in workspace.rglob("*")
        if path.is_file() and "history" not in path.parts
    }


@pytest.mark.parametrize("index", [True, False], ids=["from-the-index", "from-the-folders"])
def test_a_new_job_names_the_closest_done_job_and_what_differs(
    tmp_path: Path, workspace: Path, index: bool
):
    run(tmp_path, workspace, dry=False)
    if not index:
        for path in (workspace / ".etude").glob("index.sqlite*"):
            path.unlink()
    before = snapshot(workspace)
    out = run(tmp_path, workspace, dry=True)
    lines = out[out.index("etude dry run") :].splitlines()
    assert "1 of 2 job(s) would run" in lines[0]
    new = next(line for line in lines if line.split()[0] == "run")
    # closest: lr=0.01/hidden=64 (one change), not lr=0.5/hidden=32 (two); values are named
    # by their full paths
    assert "new (closest done: learn.learn/" in new
    assert new.endswith(": learn.model.hidden: 64 -> 128)"), new
    reused = next(line for line in lines if line.split()[0] == "reuse")
    assert reused.endswith("done before")
    assert "reused flags: [False, True]" in out, "the plan's reused jobs say so"
    assert snapshot(workspace) == before, "a dry run writes nothing (not even an index)"


def test_the_closest_is_the_one_with_fewest_differences(tmp_path: Path, workspace: Path):
    script = tmp_path / "few.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from etude import Param, Task, experiment

            class Fit(Task):
                a: Param[int]
                b: Param[int]
                c: Param[int]

                def execute(self):
                    pass

            if __name__ == "__main__":
                dry = os.environ.get("DRY") == "1"
                with experiment(sys.argv[1], "few", dry_run=dry):
                    if dry:
                        Fit.C(a=1, b=2, c=9).submit()
                    else:
                        Fit.C(a=5, b=6, c=7).submit()
                        Fit.C(a=1, b=2, c=3).submit()
            """
        )
    )
    for dry in ("0", "1"):
        result = subprocess.run(
            [sys.executable, str(script), str(workspace)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "DRY": dry},
        )
        assert result.returncode == 0, result.stderr
    assert "(closest done: few.fit/" in result.stdout
    assert result.stdout.rstrip().endswith("fit.c: 3 -> 9)")
