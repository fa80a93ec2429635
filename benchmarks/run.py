"""`make bench`: time etude against the goals of SPEC section 8, and experimaestro beside it.

Every measure runs in a fresh interpreter (cold imports): etude with this interpreter (the
project's `.venv`), experimaestro with `.venv-bench`, which this script creates and fills
with experimaestro on first use. If experimaestro cannot be installed or one of its measures
fails, its column says n/a and why; the exit status is non-zero only when an etude measure
fails.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks"
BENCH_VENV = ROOT / ".venv-bench"
XPM_VERSION = "2.7.0"

IMPORT_REPEATS = 7
IDENTIFIER_REPEATS = 3
TASK_REPEATS = 2  # 100 real processes each: experimaestro needs ~30 s per run
N_IDENTIFIERS = 10_000
N_TASKS = 100
N_RESUBMIT = 10_000


class CaseFailed(RuntimeError):
    """A benchmark subprocess failed, timed out, or measured something other than asked."""


@dataclass
class Framework:
    """One side of the comparison: its interpreter, case script and module name."""

    label: str
    python: Path | None  # None: not available (reason in `missing`)
    script: Path
    module: str
    missing: str = ""
    timeout: float = 120.0


@dataclass
class Row:
    label: str
    target: float | None = None  # seconds; None: shown for reference only
    target_text: str = ""
    values: dict[str, float | None] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


# -- the benchmark environment -------------------------------------------------------------
def _bench_python() -> Path:
    return BENCH_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _installed_xpm(python: Path) -> str | None:
    probe = "from importlib.metadata import version; print(version('experimaestro'))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_bench_env() -> tuple[Path | None, str]:
    """`.venv-bench` with experimaestro==XPM_VERSION: (its python, "") or (None, why not)."""
    python = _bench_python()
    if python.exists() and _installed_xpm(python) == XPM_VERSION:
        return python, ""
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", str(BENCH_VENV)])
    steps.append([str(python), "-m", "pip", "install", "--quiet", f"experimaestro=={XPM_VERSION}"])
    for argv in steps:
        _note(f"setting up {BENCH_VENV.name}: {' '.join(Path(a).name for a in argv[:3])} ...")
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            return None, f"`{' '.join(argv)}` took more than 900 s"
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()[-15:]
            tail = "\n".join(ln if len(ln) < 300 else ln[:300] + " ..." for ln in lines)
            return (
                None,
                f"`{' '.join(argv)}` exited {done.returncode}; its output ends with:\n{tail}",
            )
    if _installed_xpm(python) != XPM_VERSION:
        return None, f"experimaestro {XPM_VERSION} is still not importable from {python}"
    return python, ""


def _loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


def _load() -> float:
    """The 1-minute load average, or 0 where the system does not report one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _note(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- running one measure -------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ETUDE_DRY_RUN", None)  # a dry run would measure nothing
    env.pop("PYTHONPATH", None)
    return env


def run_case(fw: Framework, *args: str) -> dict[str, float]:
    """Run `fw.script *args` in a fresh interpreter; return its `BENCH {json}` line."""
    assert fw.python is not None
    argv = [str(fw.python), str(fw.script), *args]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=fw.timeout, env=_env(), cwd=HERE
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
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=_env())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise CaseFailed(f"`python -c {code!r}` exited {done.returncode}: {done.stderr[-300:]}")
    return seconds


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


# -- the measures --------------------------------------------------------------------------
def measure_startup(fw: Framework) -> tuple[float, float]:
    """(bare interpreter start, `import MODULE` beyond it): best wall times, interleaved."""
    assert fw.python is not None
    python = fw.python
    bare, loaded = [], []
    for _ in range(IMPORT_REPEATS):
        bare.append(wall_time(python, "pass"))
        loaded.append(wall_time(python, f"import {fw.module}"))
    return min(bare), max(min(loaded) - min(bare), 0.0)


def measure_identifiers(fw: Framework) -> float:
    def once() -> float:
        result = run_case(fw, "identifiers", str(N_IDENTIFIERS))
        if result["distinct"] != N_IDENTIFIERS:
            raise CaseFailed(f"{result['distinct']} distinct identifiers, not {N_IDENTIFIERS}")
        return result["seconds"]

    return best_of(IDENTIFIER_REPEATS, once)


def measure_tasks(fw: Framework) -> float:
    def once() -> float:
        with tempfile.TemporaryDirectory(prefix="etude-bench-", ignore_cleanup_errors=True) as d:
            result = run_case(fw, "tasks", str(Path(d) / "ws"), str(N_TASKS))
        if result["jobs"] != N_TASKS or result["reused"] != 0:
            raise CaseFailed(f"expected {N_TASKS} jobs run afresh, got {result}")
        return result["seconds"]

    return best_of(TASK_REPEATS, once)


def measure_resubmit(fw: Framework) -> float:
    with tempfile.TemporaryDirectory(prefix="etude-bench-", ignore_cleanup_errors=True) as d:
        ws = str(Path(d) / "ws")
        run_case(fw, "prepare", ws, str(N_RESUBMIT))

        def once() -> float:
            result = run_case(fw, "resubmit", ws, str(N_RESUBMIT))
            if result["reused"] != N_RESUBMIT:
                raise CaseFailed(
                    f"only {result['reused']} of {N_RESUBMIT} jobs were reused: the prepared "
                    "done markers do not match the job folders"
                )
            return result["seconds"]

        return best_of(TASK_REPEATS, once)


def collect(frameworks: list[Framework]) -> tuple[list[Row], bool]:
    """Run every measure for every framework; return the rows and whether etude's all ran."""
    bare = Row("interpreter start (`python -c pass`)", None, "reference")
    imp = Row("import (beyond interpreter start)", 0.080, "< 80 ms")
    ids = Row(f"identifiers of {N_IDENTIFIERS:,} configs", 0.15, "< 0.15 s")
    tasks = Row(f"{N_TASKS} trivial tasks, submit to done", 3.0, "< 3 s")
    again = Row(f"resubmit {N_RESUBMIT:,} completed tasks", 1.0, "< 1 s")
    steps: list[tuple[list[Row], Callable[[Framework], float | tuple[float, float]]]] = [
        ([bare, imp], measure_startup),
        ([ids], measure_identifiers),
        ([tasks], measure_tasks),
        ([again], measure_resubmit),
    ]
    etude_ok = True
    for fw in frameworks:
        for rows, measure in steps:
            if fw.python is None:
                for row in rows:
                    row.values[fw.label] = None
                    row.reasons[fw.label] = fw.missing
                continue
            _note(f"{fw.label}: {rows[-1].label} ...")
            try:
                got = measure(fw)
            except CaseFailed as exc:
                etude_ok = etude_ok and fw.label != "etude"
                _note(f"{fw.label}: FAILED: {exc}")
                for row in rows:
                    row.values[fw.label] = None
                    row.reasons[fw.label] = str(exc)
                continue
            values = got if isinstance(got, tuple) else (got,)
            for row, value in zip(rows, values, strict=True):
                row.values[fw.label] = value
                _note(f"{fw.label}: {row.label}: {_fmt(value)}")
    return [bare, imp, ids, tasks, again], etude_ok


# -- the report ----------------------------------------------------------------------------
def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def table_cells(row: Row) -> list[str]:
    ours, theirs = row.values.get("etude"), row.values.get("experimaestro")
    verdict = ""
    if row.target is not None and ours is not None:
        verdict = "yes" if ours <= row.target else "NO"
    ratio = f"{ours / theirs:.3f}" if ours is not None and theirs else "n/a"
    return [row.label, _fmt(ours), row.target_text, verdict, _fmt(theirs), ratio]


HEADERS = ["measure", "etude", "SPEC target", "met", f"experimaestro {XPM_VERSION}", "etude / xpm"]


def print_table(rows: list[Row]) -> None:
    cells = [table_cells(row) for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is an etude dependency, but a plain table will do without it
        widths = [max(len(c[i]) for c in [HEADERS, *cells]) for i in range(len(HEADERS))]
        for line in [HEADERS, ["-" * w for w in widths], *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        return
    table = Table(title="etude benchmarks (SPEC section 8)")
    for i, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right")
    for line in cells:
        table.add_row(*line)
    Console(width=max(120, Console().width)).print(table)


def print_notes(rows: list[Row]) -> None:
    """Why a cell reads n/a: one line per framework and cause."""
    causes: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for label, reason in row.reasons.items():
            causes.setdefault((label, reason), []).append(row.label)
    for (label, reason), where in causes.items():
        which = "every measure" if len(where) == len(rows) else "; ".join(where)
        print(f"{label} n/a for {which}: {reason}")


def main() -> int:
    started = time.perf_counter()
    bench_python, why = ensure_bench_env()
    if bench_python is None:
        _loud(
            f"experimaestro {XPM_VERSION} could not be installed into {BENCH_VENV}.\n"
            f"Its column will read n/a. Cause:\n{why}"
        )
    frameworks = [
        Framework("etude", Path(sys.executable), HERE / "etude_cases.py", "etude"),
        Framework(
            "experimaestro",
            bench_python,
            HERE / "xpm_cases.py",
            "experimaestro",
            missing=f"experimaestro {XPM_VERSION} could not be installed (see above)",
            timeout=240.0,
        ),
    ]
    load_before = _load()
    rows, etude_ok = collect(frameworks)
    print(
        f"\n{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"best of {IMPORT_REPEATS} (import), {IDENTIFIER_REPEATS} (identifiers), "
        f"{TASK_REPEATS} (tasks, resubmit); each run in a fresh interpreter."
    )
    busy = max(load_before, _load())
    if busy > (os.cpu_count() or 1) * 0.5:
        print(
            f"note: the machine was busy (1-minute load average up to {busy:.1f} on "
            f"{os.cpu_count()} CPUs); timings of process-heavy measures are inflated."
        )
    print_table(rows)
    print_notes(rows)
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s")
    return 0 if etude_ok else 1


if __name__ == "__main__":
    sys.exit(main())
