"""An agent with the Slurm launcher: each queued run becomes a Slurm job on the test cluster,
run by the node from the rebuilt code, recorded as any run. Both databases."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from etude.tracking import Run
from etude.tracking.query import close_indexes


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ETUDE_JOB_FOLDER", raising=False)
    yield
    close_indexes()


def test_an_agent_submits_queued_runs_to_slurm(slurm_cluster, tmp_path: Path,
                                                store_env: dict[str, str]) -> None:
    ws = tmp_path / "ws"
    script = tmp_path / "on_node.py"
    script.write_text(textwrap.dedent("""\
        import os
        from etude.tracking import Run
        run = Run.init(project="slurm", name="x", auto_resource_monitoring=False)
        params = run.connect({"n": 1})
        print("slurm job", os.environ.get("SLURM_JOB_ID"), "n", params["n"])
        run.logger.report_single_value("n", params["n"])
    """))
    drafts = [Run.create(project="slurm", name=f"r{i}", script=str(script), workspace=ws)
              for i in range(2)]
    drafts[1].set_parameter("General/n", 5)
    for draft in drafts:
        draft.enqueue("cluster")
    env = {**os.environ, **store_env, "ETUDE_WORKSPACE": str(ws)}
    done = subprocess.run([sys.executable, "-m", "etude.cli", "agent", "--queue", "cluster",
                           "--launcher", "slurm", "--max-jobs", "2", "--once"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = (Run.get(draft.id, workspace=ws) for draft in drafts)
    assert first.state == "completed" and second.state == "completed", second.console()
    assert "slurm job" in first.console() and "None" not in first.console()
    assert second.metrics["n"]["n"]["last"] == 5
