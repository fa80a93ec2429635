"""examples/resumable_training.py: cut by its time limit, resumed, and equal to one long run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "resumable_training.py"


def summary(stdout: str) -> dict[str, str]:
    """The `key: value` lines the example prints after the experiment."""
    keys = ("attempts", "final loss", "matches uninterrupted training")
    found = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in keys:
            found[key] = value.strip()
    assert set(found) == set(keys), stdout
    return found


@pytest.mark.parametrize(
    "extra",
    [pytest.param([], id="stopped-by-sigterm"), pytest.param(["--graceful"], id="graceful")],
)
def test_training_cut_by_the_time_limit_resumes_to_the_uninterrupted_result(
    tmp_path: Path, extra: list[str]
):
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--workspace", tmp_path / "runs", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = summary(result.stdout)
    assert int(found["attempts"]) > 1
    assert found["matches uninterrupted training"] == "yes"
    assert 0 < float(found["final loss"]) < 0.5  # 40 epochs bring it down from about 5
    assert "timed out: starting attempt 2" in result.stderr
