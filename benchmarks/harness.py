"""The benchmark harness of `make bench`: one side of a comparison (`Framework`), a row of a
table (`Row`), one case run in a fresh interpreter (`run_case`), and every measure of a table
run for every framework (`collect`). Shared by `run.py` and `tracking_bench.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

IMPORT_REPEATS = 7


class CaseFailed(RuntimeError):
    """A benchmark subprocess failed, timed out, or measured something other than asked."""


class NotMeasured(CaseFailed):
    """The measure does not apply to this framework (it has no such feature): n/a, and why."""


@dataclass
class Framework:
    """One side of the comparison: its interpreter, case script and module name."""

    label: str
    python: Path | None  # None: not available (reason in `missing`)
    script: Path
    module: str
    missing: str = ""
    timeout: float = 120.0
    args: tuple[str, ...] = ()  # put before the case name on the command line
    env: dict[str, str] = field(default_factory=dict)  # added to the environment


@dataclass
class Row:
    label: str
    target: float | None = None  # seconds; None: shown for reference only
    target_text: str = ""
    ratio_target: float | None = None  # met when etude / peer is at most this
    scales: dict[str, float] = field(default_factory=dict)  # peer -> factor its time was scaled by
    values: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- running one measure -------------------------------------------------------------------
def case_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ETUDE_DRY_RUN", None)  # a dry run would measure nothing
    env.pop("PYTHONPATH", None)
    # An installed package has its bytecode cached; without the cache every measure would
    # also time compiling etude's modules (about 0.1 s on the 2-CPU development machine).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_case(fw: Framework, *args: str) -> dict[str, float]:
    """Run `fw.script *args` in a fresh interpreter; return its `BENCH {json}` line."""
    assert fw.python is not None
    argv = [str(fw.python), str(fw.script), *fw.args, *args]
    env = {**case_env(), **fw.env}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=fw.timeout, env=env,
            cwd=fw.script.parent,
        )
    except subprocess.TimeoutExpired as exc:
        raise CaseFailed(
            f"`{fw.script.name} {' '.join(args)}` ran over {exc.timeout:.0f} s"
        ) from exc
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        tail = "\n    ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise CaseFailed(
            f"`{fw.script.name} {' '.join(args)}` exited {done.returncode}:\n    {tail}"
        )
    result: dict[str, float] = json.loads(lines[-1][len("BENCH ") :])
    return result


def wall_time(python: Path, code: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=case_env())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise CaseFailed(f"`python -c {code!r}` exited {done.returncode}: {done.stderr[-300:]}")
    return seconds


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


def measure_startup(fw: Framework) -> tuple[float, float]:
    """(bare interpreter start, `import MODULE` beyond it): best wall times, interleaved."""
    assert fw.python is not None
    python = fw.python
    bare, loaded = [], []
    for _ in range(IMPORT_REPEATS):
        bare.append(wall_time(python, "pass"))
        loaded.append(wall_time(python, f"import {fw.module}"))
    return min(bare), max(min(loaded) - min(bare), 0.0)


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="etude-bench-", ignore_cleanup_errors=True)


def expect(result: dict[str, float], key: str, wanted: int, what: str) -> None:
    if result.get(key) != wanted:
        raise CaseFailed(f"{what}: expected {key}={wanted}, got {result}")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 0.001:
        return f"{seconds * 1000:.3f} ms"
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


# -- running the measures ------------------------------------------------------------------
Measure = Callable[[Framework], "float | tuple[float, ...]"]
Step = tuple[list[Row], Measure]


def collect(frameworks: list[Framework], steps: list[Step]) -> tuple[list[Row], bool]:
    """Run every measure for every framework; return the rows and whether etude's all ran."""
    etude_ok = True
    for fw in frameworks:
        for rows, measure in steps:
            if fw.python is None:
                for row in rows:
                    row.values[fw.label] = None
                    row.reasons[fw.label] = fw.missing
                continue
            progress(f"{fw.label}: {rows[-1].label.strip()} ...")
            try:
                got = measure(fw)
            except CaseFailed as exc:
                etude_ok = etude_ok and fw.label != "etude"
                outcome = "n/a" if isinstance(exc, NotMeasured) else "FAILED"
                progress(f"{fw.label}: {outcome}: {exc}")
                for row in rows:
                    row.values[fw.label] = None
                    row.reasons[fw.label] = str(exc)
                continue
            values = got if isinstance(got, tuple) else (got,)
            for row, value in zip(rows, values, strict=True):
                row.values[fw.label] = value
                progress(f"{fw.label}: {row.label}: {format_seconds(value)}")
    return [row for rows, _ in steps for row in rows], etude_ok
