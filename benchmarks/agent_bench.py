"""The queues-and-agents row of `make bench`: 100 queued trivial runs through one
`etude agent --max-jobs 2 --once`, from enqueue to done. No peer runs this without a server
(ClearML's agent needs its server: MongoDB, Elasticsearch, Redis), so the row has no ratio."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from harness import Row, case_env, progress, scratch_dir

N_QUEUED = 100
AGENT_TIMEOUT = 900.0

SCRIPT = textwrap.dedent("""\
    from etude.tracking import Run
    run = Run.init(project="bench", name="trivial", auto_resource_monitoring=False,
                   auto_connect_frameworks=False)
    run.logger.report_single_value("one", 1)
""")


def agent_table() -> tuple[list[Row], bool, list[str]]:
    """(rows, etude ok, notes)."""
    row = Row(f"agent: {N_QUEUED} queued trivial runs, --max-jobs 2, queue-to-done per run",
              target=None)
    notes: list[str] = []
    with scratch_dir() as root:
        try:
            per_run, total = _measure(Path(root))
        except (subprocess.SubprocessError, OSError, AssertionError) as error:
            row.values["etude"] = None
            row.reasons["etude"] = str(error)[:200]
            return [row], False, notes
    row.values["etude"] = per_run
    notes.append(f"agent: {N_QUEUED} runs took {total:.1f} s from the agent's start to the "
                 "last run's end (each run is a fresh Python process that imports etude).")
    return [row], True, notes


def _measure(root: Path) -> tuple[float, float]:
    script = root / "trivial.py"
    script.write_text(SCRIPT)
    ws = root / "ws"
    env = {**case_env(), "ETUDE_WORKSPACE": str(ws)}
    progress(f"agent: enqueueing {N_QUEUED} runs")
    make = textwrap.dedent(f"""\
        from etude.tracking import Run
        for index in range({N_QUEUED}):
            Run.create(project="bench", name=f"r{{index}}", script={str(script)!r}).enqueue()
    """)
    subprocess.run([sys.executable, "-c", make], env=env, check=True, timeout=AGENT_TIMEOUT)
    progress("agent: running them")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "etude.cli", "agent", "--max-jobs", "2", "--once"],
                   env=env, check=True, timeout=AGENT_TIMEOUT, capture_output=True)
    total = time.perf_counter() - started
    done = subprocess.run([sys.executable, "-m", "etude.cli", "runs", "list", "--count",
                           "--json"], env=env, check=True, capture_output=True, text=True)
    assert '"completed": 100' in done.stdout, done.stdout
    return total / N_QUEUED, total


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "")
    rows, ok, notes = agent_table()
    print(rows[0].label, rows[0].values, notes)
