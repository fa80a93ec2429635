"""A job the kernel's OOM killer ends is reported as such, not as a bare "killed (signal 9)".

The test runs a real experiment in a memory cgroup of its own with a small limit, and a job
that allocates beyond it: the kernel kills it. It needs a writable memory cgroup (root, or a
delegated cgroup); elsewhere it is skipped, saying so. What it cannot test: a system-wide OOM
kill (it would endanger the machine), and a cgroup shared with another process killed at the
same moment (the report then blames the job: the message says "most likely").
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from etude.workspace import Workspace, read_json

LIMIT = 400 * 1024 * 1024  # the experiment, its index writer and the job together

SCRIPT = """
import sys

from etude import Param, Task, experiment


class Greedy(Task):
    megabytes: Param[int]

    def execute(self):
        blocks = []
        for _ in range(self.megabytes):
            blocks.append(bytearray(1024 * 1024))  # bytearray() writes its pages: resident
        print("allocated", len(blocks), "MB")


if __name__ == "__main__":
    with experiment(sys.argv[1], "oom"):
        Greedy.C(megabytes=int(sys.argv[2])).submit()
"""


def _memory_cgroup() -> tuple[Path, str] | None:
    """(folder of this process's memory cgroup, "v1" or "v2"), if there is one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "v1"
        if controllers == "":
            for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                folder = root / path.lstrip("/")
                if (folder / "memory.max").exists() or (folder / "memory.events").exists():
                    return folder, "v2"
    return None


@pytest.fixture
def small_cgroup() -> Iterator[Path]:
    """A child memory cgroup limited to LIMIT bytes, removed at the end."""
    found = _memory_cgroup() if sys.platform == "linux" else None
    if found is None:
        pytest.skip("no memory cgroup here: an OOM kill cannot be provoked safely")
    parent, version = found
    child = parent / f"etude-oom-{uuid.uuid4().hex[:8]}"
    try:
        child.mkdir()
        if version == "v1":
            (child / "memory.limit_in_bytes").write_text(str(LIMIT))
        else:
            (child / "memory.max").write_text(str(LIMIT))
            (child / "memory.swap.max").write_text("0")
    except OSError as exc:
        if child.exists():
            child.rmdir()
        pytest.skip(f"cannot make a memory cgroup with a limit ({exc}); needs root")
    try:
        yield child
    finally:
        # The experiment's index writer may outlive it by a moment: wait for the cgroup to
        # empty (a cgroup with processes cannot be removed).
        deadline = time.monotonic() + 60
        while (child / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        child.rmdir()


def test_job_killed_by_the_oom_killer_says_memory_is_the_cause(
    small_cgroup: Path, tmp_path: Path, workspace: Path
):
    script = tmp_path / "greedy.py"
    script.write_text(textwrap.dedent(SCRIPT))
    # The experiment moves itself into the cgroup before Python starts: its job inherits it.
    result = subprocess.run(
        [
            "sh",
            "-c",
            f'echo $$ > "{small_cgroup}/cgroup.procs" && exec "$0" "$@"',
            sys.executable,
            str(script),
            str(workspace),
            str(2 * LIMIT // (1024 * 1024)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode != 0, result.stdout + result.stderr
    [job] = Workspace(workspace).iter_job_dirs()
    failure = read_json(job.failed)
    assert failure["reason"] == "killed" and failure["exit_status"] == -9, failure
    assert "out-of-memory killer" in failure["message"] and failure["oom_kill"] is True
    assert "out-of-memory killer" in result.stderr
    assert not job.stderr.read_text().strip()  # the job itself could say nothing


INFRA_SCRIPT = """
import sys

import pydantic

from etude.infra import TaskInfra


class Greedy(pydantic.BaseModel):
    megabytes: int
    infra: TaskInfra = TaskInfra()

    @infra.apply
    def allocate(self) -> int:
        blocks = [bytearray(1024 * 1024) for _ in range(self.megabytes)]
        return len(blocks)


if __name__ == "__main__":
    infra = {"folder": sys.argv[1], "cluster": "local"}
    Greedy(megabytes=int(sys.argv[2]), infra=infra).allocate()
"""


def test_infra_job_killed_by_the_oom_killer_says_memory_is_the_cause(
    small_cgroup: Path, tmp_path: Path
):
    script = tmp_path / "greedy_infra.py"
    script.write_text(textwrap.dedent(INFRA_SCRIPT))
    result = subprocess.run(
        [
            "sh",
            "-c",
            f'echo $$ > "{small_cgroup}/cgroup.procs" && exec "$0" "$@"',
            sys.executable,
            str(script),
            str(tmp_path / "cache"),
            str(2 * LIMIT // (1024 * 1024)),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode != 0
    assert "JobError: Greedy.allocate: killed (signal 9) by the kernel's out-of-memory killer" in (
        result.stderr
    ), result.stderr
