"""`make bench`: time etude against the goals of SPEC section 8, with its peers beside it.

Every measure runs in a fresh interpreter (cold imports): etude with this interpreter (the
project's `.venv`), the peers with `.venv-bench`, which this script creates and fills on
first use: experimaestro for the scheduler measures, exca for the pydantic infra ones, MLflow,
Aim and ClearML for run tracking. If a peer cannot be installed or one of its measures fails,
its column says n/a and why; the exit status is non-zero only when an etude measure fails.
While `etude.infra` cannot be imported yet, its rows say so instead of failing the run. The
store table times the index (`store_cases.py`) and puts the scheduler measures beside those of
etude before the index (commit BEFORE_STORE, checked out in a temporary git worktree). The
tracking table (`tracking_cases.py`) gives the peers smaller counts and scales their times up
linearly (the row says by how much).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from agent_bench import agent_table
from harness import (
    IMPORT_REPEATS,
    CaseFailed,
    Framework,
    Row,
    Step,
    best_of,
    case_env,
    collect,
    expect,
    format_seconds,
    measure_startup,
    progress,
    run_case,
    scratch_dir,
)
from tracking_bench import INIT_REPEATS, TRACKING_PEERS, tracking_frameworks, tracking_table

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "benchmarks"
BENCH_VENV = ROOT / ".venv-bench"
XPM_VERSION = "2.7.0"
EXCA_SPEC = "0.6.*"  # pip version specifier: the newest 0.6 release
MLFLOW_VERSION = "3.17.2"  # the newest that installs: 3.18.0 needs an unpublished mlflow-skinny
AIM_VERSION = "3.29.1"
CLEARML_VERSION = "2.1.12"
PEERS = {
    "experimaestro": f"=={XPM_VERSION}",
    "exca": f"=={EXCA_SPEC}",
    "mlflow": f"=={MLFLOW_VERSION}",
    "aim": f"=={AIM_VERSION}",
    "clearml": f"=={CLEARML_VERSION}",
}
PEER_TABLE = {"experimaestro": "core", "exca": "infra", "mlflow": "tracking", "aim": "tracking",
              "clearml": "tracking"}  # the table each peer is installed for

IDENTIFIER_REPEATS = 3
TASK_REPEATS = 2  # 100 real processes each: experimaestro needs ~30 s per run
N_IDENTIFIERS = 10_000
N_TASKS = 100
N_RESUBMIT = 10_000
INFRA_REPEATS = 3
N_UIDS = 10_000
N_TASK_FIRST = 50
N_TASK_CACHED = 200  # timed calls; one more is made first, untimed (first-use imports)
N_MAP = 10_000
N_SLURM = 200
N_STORE_JOBS = 100_000  # jobs written straight into the index of the store measures
N_STORE_FOLDERS = 10_000  # job folders for `etude index rebuild`
AB_REPEATS = 3  # runs of each scheduler measure per side in the store table, interleaved
BEFORE_STORE = "b15c838"  # the last commit before the index
BEFORE_RATIO = 1.10  # the scheduler measures may take at most 10% longer than before it


# -- the benchmark environment -------------------------------------------------------------
def _bench_python() -> Path:
    return BENCH_VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_version(python: Path, package: str) -> str | None:
    probe = f"from importlib.metadata import version; print(version({package!r}))"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _satisfies(version: str | None, spec: str) -> bool:
    """`version` matches `==X` or `==X.*` (the only specifiers PEERS uses)."""
    wanted = spec.removeprefix("==")
    if version is None:
        return False
    if wanted.endswith(".*"):
        return version.startswith(wanted[:-1])
    return version == wanted


def _run_step(argv: list[str]) -> str:
    """Run one set-up command; "" if it worked, else why not."""
    progress(f"setting up {BENCH_VENV.name}: {' '.join(Path(a).name for a in argv[:3])} ...")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return f"`{' '.join(argv)}` took more than 900 s"
    if done.returncode == 0:
        return ""
    lines = (done.stdout + done.stderr).strip().splitlines()[-15:]
    tail = "\n".join(ln if len(ln) < 300 else ln[:300] + " ..." for ln in lines)
    return f"`{' '.join(argv)}` exited {done.returncode}; its output ends with:\n{tail}"


def ensure_bench_env(packages: list[str]) -> tuple[Path | None, dict[str, str]]:
    """`.venv-bench` with these peers of PEERS: (its python, {peer: why it is missing}).

    Each peer is installed by its own pip call, so one that fails leaves the others usable.
    """
    python = _bench_python()
    if not python.exists():
        why = _run_step([sys.executable, "-m", "venv", str(BENCH_VENV)])
        if why:
            return None, dict.fromkeys(packages, why)
    missing: dict[str, str] = {}
    for package in packages:
        spec = PEERS[package]
        if _satisfies(installed_version(python, package), spec):
            continue
        why = _run_step([str(python), "-m", "pip", "install", "--quiet", f"{package}{spec}"])
        if not why and not _satisfies(installed_version(python, package), spec):
            why = f"{package}{spec} is still not importable from {python}"
        if why:
            missing[package] = why
    return python, missing


def probe_etude_infra() -> tuple[bool, str]:
    """(importable, why not): can this interpreter import etude.infra's two classes?

    The second value is the error's last line. An ImportError means "not written yet"; any
    other error is a broken etude.infra, which fails the run.
    """
    code = "from etude.infra import TaskInfra, MapInfra"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=case_env())
    if done.returncode == 0:
        return True, ""
    last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
    return False, last


def _loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


def _load() -> float:
    """The 1-minute load average, or 0 where the system does not report one."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


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


# -- the pydantic infra measures (infra_cases.py, etude against exca) -----------------------


def measure_infra_uids(fw: Framework) -> float:
    def once() -> float:
        result = run_case(fw, "uids", str(N_UIDS))
        expect(result, "distinct", N_UIDS, "uids")
        return result["seconds"]

    return best_of(INFRA_REPEATS, once)


def _first_run(fw: Framework, case: str, count: int, value: str) -> float:
    """Best of INFRA_REPEATS runs of `case` on a new cache folder, all `count` computed."""

    def once() -> float:
        with scratch_dir() as d:
            result = run_case(fw, case, str(Path(d) / "cache"), str(count))
        expect(result, "computed", count, case)
        return result[value]

    return best_of(INFRA_REPEATS, once)


def _cached_run(fw: Framework, prepare: str, case: str, count: int, value: str) -> float:
    """`prepare` fills a cache folder once; then best of INFRA_REPEATS runs of `case` on it,
    each checked to have computed nothing."""
    with scratch_dir() as d:
        folder = str(Path(d) / "cache")
        run_case(fw, prepare, folder, str(count))

        def once() -> float:
            result = run_case(fw, case, folder, str(count))
            expect(result, "computed", 0, f"{case} (results prepared by {prepare})")
            return result[value]

        return best_of(INFRA_REPEATS, once)


def measure_task_first(fw: Framework) -> float:
    return _first_run(fw, "task-first", N_TASK_FIRST, "per_call")


def measure_task_cached(fw: Framework) -> float:
    return _cached_run(fw, "task-prepare", "task-cached", N_TASK_CACHED + 1, "per_call")


def measure_map_first(fw: Framework) -> float:
    return _first_run(fw, "map-first", N_MAP, "seconds")


def measure_map_cached(fw: Framework) -> float:
    return _cached_run(fw, "map-first", "map-cached", N_MAP, "seconds")


def core_steps() -> list[Step]:
    """The scheduler measures, etude against experimaestro."""
    return [
        (
            [
                Row("interpreter start (`python -c pass`)", None, "reference"),
                Row("import (beyond interpreter start)", 0.080, "< 80 ms"),
            ],
            measure_startup,
        ),
        ([Row(f"identifiers of {N_IDENTIFIERS:,} configs", 0.15, "< 0.15 s")], measure_identifiers),
        ([Row(f"{N_TASKS} trivial tasks, submit to done", 3.0, "< 3 s")], measure_tasks),
        ([Row(f"resubmit {N_RESUBMIT:,} completed tasks", 1.0, "< 1 s")], measure_resubmit),
    ]


def infra_steps() -> list[Step]:
    """The pydantic infra measures, etude.infra against exca (same script, same classes)."""
    return [
        (
            [Row(f"uids of {N_UIDS:,} models (`infra.uid()`)", None, "reference")],
            measure_infra_uids,
        ),
        ([Row("TaskInfra first call, per call", None, "reference")], measure_task_first),
        (
            [Row("TaskInfra cached call on a new object, per call", 0.0002, "< 0.2 ms")],
            measure_task_cached,
        ),
        ([Row(f"MapInfra first run, {N_MAP:,} items", None, "reference")], measure_map_first),
        ([Row(f"MapInfra cached reload, {N_MAP:,} items", 0.05, "< 0.05 s")], measure_map_cached),
    ]


def measure_slurm_jobs(fw: Framework) -> float:
    """One run: N_SLURM trivial jobs on the test cluster, submit to all done."""
    with scratch_dir() as scratch:
        result = run_case(fw, str(Path(scratch) / "ws"), str(N_SLURM))
    expect(result, "jobs", N_SLURM, "Slurm jobs")
    progress(f"{fw.label}: {result['sbatch_calls']} sbatch call(s)")
    return float(result["seconds"])


def slurm_steps() -> list[Step]:
    """Slurm: the same jobs as one array (etude's default) and with one sbatch call per job."""
    return [([Row(f"{N_SLURM} trivial jobs on Slurm, submit to done", None, "reference")],
              measure_slurm_jobs)]


def slurm_frameworks() -> list[Framework]:
    """Both sides run slurm_cases.py on the single-node test cluster (started if needed)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from slurm_cluster import SlurmClusterError, start

        start()
        python, missing = Path(sys.executable), ""
    except (ImportError, SlurmClusterError, OSError) as exc:
        _loud(f"no Slurm cluster for the Slurm benchmark: {exc}")
        python, missing = None, f"no Slurm cluster: {exc}"
    script = HERE / "slurm_cases.py"
    return [
        Framework("etude", python, script, "etude", missing, 600.0, ("array",)),
        Framework("per-job", python, script, "etude", missing, 600.0, ("single",)),
    ]


# -- the store: the index, and the scheduler before and after it ---------------------------
def measure_index(fw: Framework) -> tuple[float, float, float, float, float]:
    """Queries on an index of N_STORE_JOBS jobs, then `etude jobs list` on it (store_cases.py)."""
    with scratch_dir() as d:
        ws = str(Path(d) / "ws")
        made = run_case(fw, "generate", ws, str(N_STORE_JOBS))
        expect(made, "jobs", N_STORE_JOBS, "generate")
        progress(f"{fw.label}: index of {N_STORE_JOBS:,} jobs written in {made['seconds']:.1f} s")
        query = run_case(fw, "query", ws)
        progress(f"{fw.label}: {query['matching']:,} jobs match the filter; per state without "
              f"the state condition: {query['counts']}")
        listed = run_case(fw, "cli-list", ws, str(N_STORE_JOBS))
        expect(listed, "jobs_after", N_STORE_JOBS, "jobs in the index after `jobs list`")
    return query["page"], query["count"], query["by_param"], listed["seconds"], listed["refresh"]


def measure_rebuild(fw: Framework) -> float:
    with scratch_dir() as d:
        ws = str(Path(d) / "ws")
        run_case(fw, "folders", ws, str(N_STORE_FOLDERS))
        result = run_case(fw, "rebuild", ws, str(N_STORE_FOLDERS))
    expect(result, "indexed", N_STORE_FOLDERS, "`etude index rebuild`")
    first = format_seconds(result["first"])
    progress(f"{fw.label}: index rebuild: first run (creates the index) {first}")
    return result["seconds"]


def store_steps() -> list[Step]:
    page = "filtered, sorted page of 50"
    return [
        (
            [
                Row(f"index of {N_STORE_JOBS:,} jobs: {page}", 0.050, "< 50 ms"),
                Row("  count per state, same filter", None, "reference"),
                Row("  the page sorted by params.lr", None, "reference"),
                Row("etude jobs list --where ... --limit 50 (end to end)", 0.5, "< 0.5 s"),
                Row("  its reconciliation with the folders (refresh)", None, "reference"),
            ],
            measure_index,
        ),
        ([Row(f"etude index rebuild of {N_STORE_FOLDERS:,} job folders", 5.0, "< 5 s")],
         measure_rebuild),
    ]


def _git(*args: str) -> str:
    """Run git in this checkout; "" if it worked, else why not."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    except OSError as exc:
        return f"git cannot run: {exc}"
    return "" if done.returncode == 0 else f"`git {' '.join(args)}`: {done.stderr.strip()}"


@contextmanager
def before_store() -> Iterator[Framework]:
    """etude as of BEFORE_STORE in a temporary git worktree (removed on exit), run with this
    interpreter and PYTHONPATH=WORKTREE/src; `missing` says why when it cannot be."""
    with scratch_dir() as scratch:
        tree = Path(scratch) / "etude"
        why = _git("worktree", "add", "--detach", str(tree), BEFORE_STORE)
        env = {"PYTHONPATH": str(tree / "src")}
        fw = Framework("before store", Path(sys.executable), tree / "benchmarks" / "etude_cases.py",
                       "etude", env=env)
        if not why:
            probe = "import etude; print(etude.__file__)"
            done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                  env={**case_env(), **env})
            if not done.stdout.startswith(str(tree)):
                why = f"PYTHONPATH={tree / 'src'} imports {done.stdout.strip() or done.stderr}"
        if why:
            _loud(f"no etude {BEFORE_STORE} to compare with: {why}")
            fw.python, fw.missing = None, why
        try:
            yield fw
        finally:
            if tree.exists():
                _git("worktree", "remove", "--force", str(tree))


def _tasks_run(fw: Framework, _: Path) -> float:
    """One `tasks` run in a fresh workspace; the current etude must make an index there, the
    one before the store must not (proof that each side ran its own code)."""
    with scratch_dir() as d:
        ws = Path(d) / "ws"
        result = run_case(fw, "tasks", str(ws), str(N_TASKS))
        indexed = (ws / ".etude" / "index.sqlite").exists()
    if result["jobs"] != N_TASKS or result["reused"] != 0:
        raise CaseFailed(f"expected {N_TASKS} jobs run afresh, got {result}")
    if indexed != (fw.label == "etude"):
        raise CaseFailed(f"{fw.label}: an index was {'' if indexed else 'not '}written")
    return float(result["seconds"])


def _resubmit_run(fw: Framework, ws: Path) -> float:
    result = run_case(fw, "resubmit", str(ws), str(N_RESUBMIT))
    expect(result, "reused", N_RESUBMIT, f"{fw.label}: resubmit")
    return float(result["seconds"])


def _resubmit_prepare(fw: Framework, ws: Path) -> None:
    run_case(fw, "prepare", str(ws), str(N_RESUBMIT))


def interleaved(
    frameworks: list[Framework],
    row: Row,
    once: Callable[[Framework, Path], float],
    prepare: Callable[[Framework, Path], None] | None = None,
) -> tuple[bool, str]:
    """Best of AB_REPEATS runs per framework taken in turns (A B A B ...), so that the load of
    the machine weighs on every column alike. Each framework has its own workspace, made by
    `prepare`. Returns whether etude's runs all worked, and a note listing every run."""
    runs: dict[str, list[float]] = {fw.label: [] for fw in frameworks}
    live = []
    with ExitStack() as stack:
        for fw in frameworks:
            ws = Path(stack.enter_context(scratch_dir())) / "ws"
            try:
                if fw.python is None:
                    raise CaseFailed(fw.missing)
                if prepare is not None:
                    prepare(fw, ws)
                live.append((fw, ws))
            except CaseFailed as exc:
                row.reasons[fw.label] = str(exc)
        for turn in range(AB_REPEATS):
            for fw, ws in list(live):
                progress(f"{fw.label}: {row.label} (run {turn + 1} of {AB_REPEATS}) ...")
                try:
                    runs[fw.label].append(once(fw, ws))
                except CaseFailed as exc:
                    progress(f"{fw.label}: FAILED: {exc}")
                    row.reasons[fw.label] = str(exc)
                    live.remove((fw, ws))
    for fw in frameworks:
        got = runs[fw.label] if fw.label not in row.reasons else []
        row.values[fw.label] = min(got) if got else None
    text = "; ".join(f"{label} {' '.join(format_seconds(t) for t in times)}"
                     for label, times in runs.items())
    return "etude" not in row.reasons, f"{row.label.strip()}, every run in order: {text}"


def store_table() -> tuple[list[Row], bool, list[str]]:
    """The index measures, then the scheduler measures beside etude before the store."""
    etude = Framework("etude", Path(sys.executable), HERE / "store_cases.py", "etude.store",
                      timeout=900.0)
    rows, etude_ok = collect([etude], store_steps())
    notes = []
    tasks = Row(f"{N_TASKS} trivial tasks, submit to done", None, "<= 1.10 x before",
                BEFORE_RATIO)
    resubmit = Row(f"resubmit {N_RESUBMIT:,} completed tasks", None, "<= 1.10 x before",
                   BEFORE_RATIO)
    with before_store() as before:
        current = Framework("etude", Path(sys.executable), HERE / "etude_cases.py", "etude")
        for row, once, prepare in ((tasks, _tasks_run, None),
                                   (resubmit, _resubmit_run, _resubmit_prepare)):
            ok, note = interleaved([current, before], row, once, prepare)
            etude_ok = etude_ok and ok
            notes.append(note)
    return [*rows, tasks, resubmit], etude_ok, notes


# -- the report ----------------------------------------------------------------------------


def table_cells(row: Row, peers: list[str]) -> list[str]:
    """The row's cells: etude, its target, whether met, then each peer's time and the ratio
    (a scaled time says `(xN)`); a ratio target is judged against the first peer."""
    ours = row.values.get("etude")
    verdict = ""
    if row.target is not None and ours is not None:
        verdict = "yes" if ours <= row.target else "NO"
    first = row.values.get(peers[0]) if peers else None
    if row.ratio_target is not None and ours is not None and first:
        verdict = "yes" if ours / first <= row.ratio_target else "NO"
    cells = [row.label, format_seconds(ours), row.target_text, verdict]
    for peer in peers:
        theirs = row.values.get(peer)
        scale = row.scales.get(peer)
        shown = format_seconds(theirs) + (
            f" (x{scale:,.0f})" if theirs is not None and scale else "")
        cells += [shown, f"{ours / theirs:.3f}" if ours is not None and theirs else "n/a"]
    return cells


def print_table(rows: list[Row], title: str, peers: list[tuple[str, str]],
                target: str = "SPEC target") -> None:
    """`peers`: (label, column header) of each framework beside etude."""
    headers = ["measure", "etude", target, "met"]
    for label, header in peers:
        headers += [header, f"etude / {label}"]
    cells = [table_cells(row, [label for label, _ in peers]) for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is an etude dependency, but a plain table will do without it
        widths = [max(len(c[i]) for c in [headers, *cells]) for i in range(len(headers))]
        print(title)
        for line in [headers, ["-" * w for w in widths], *cells]:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for line in cells:
        table.add_row(*line)
    Console(width=max(120 + 36 * (len(peers) - 1), Console().width)).print(table)


def print_notes(rows: list[Row]) -> None:
    """Why a cell reads n/a: one line per framework and cause."""
    causes: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for label, reason in row.reasons.items():
            causes.setdefault((label, reason), []).append(row.label)
    for (label, reason), where in causes.items():
        which = "every measure" if len(where) == len(rows) else "; ".join(where)
        print(f"{label} n/a for {which}: {reason}")


def _peer(python: Path | None, missing: dict[str, str], package: str) -> tuple[Path | None, str]:
    """The interpreter to run `package`'s cases with, or None; and its column header."""
    if python is None or package in missing:
        _loud(
            f"{package}{PEERS[package]} could not be installed into {BENCH_VENV}.\n"
            f"Its column will read n/a. Cause:\n{missing.get(package, '')}"
        )
        return None, f"{package} {PEERS[package].removeprefix('==')}"
    return python, f"{package} {installed_version(python, package)}"


def infra_frameworks(bench_python: Path | None, exca_header: str) -> tuple[list[Framework], bool]:
    """etude and exca running infra_cases.py; False when etude.infra is broken (not absent)."""
    ok, why = probe_etude_infra()
    absent = not ok and why.startswith(("ImportError", "ModuleNotFoundError"))
    if not ok:
        progress(f"etude.infra {'not available yet' if absent else 'FAILED to import'}: {why}")
    script = HERE / "infra_cases.py"
    frameworks = [
        Framework(
            "etude",
            Path(sys.executable) if ok else None,
            script,
            "etude.infra",
            missing=f"etude.infra {'not available yet' if absent else 'fails to import'}: {why}",
            args=("--lib", "etude"),
        ),
        Framework(
            "exca",
            bench_python,
            script,
            "exca",
            missing=f"{exca_header} could not be installed (see above)",
            args=("--lib", "exca"),
        ),
    ]
    return frameworks, ok or absent


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only",
        choices=["core", "infra", "slurm", "store", "tracking", "agent"],
        help="run one table only (default: all)",
    )
    only = parser.parse_args().only
    started = time.perf_counter()
    needed = [peer for peer, table in PEER_TABLE.items() if only in (None, table)]
    bench_python, missing = ensure_bench_env(needed) if needed else (None, {})
    pythons, headers = {}, {}
    for peer in needed:
        pythons[peer], headers[peer] = _peer(bench_python, missing, peer)
    load_before = _load()
    etude_ok = True
    tables: list[tuple[list[Row], str, list[tuple[str, str]], str, list[str]]] = []
    if only in (None, "core"):
        frameworks = [
            Framework("etude", Path(sys.executable), HERE / "etude_cases.py", "etude"),
            Framework(
                "experimaestro",
                pythons["experimaestro"],
                HERE / "xpm_cases.py",
                "experimaestro",
                missing=f"{headers['experimaestro']} could not be installed (see above)",
                timeout=240.0,
            ),
        ]
        rows, ok = collect(frameworks, core_steps())
        etude_ok = etude_ok and ok
        tables.append((rows, "etude benchmarks (SPEC section 8)",
                       [("experimaestro", headers["experimaestro"])], "SPEC target", []))
    if only in (None, "infra"):
        frameworks, infra_ok = infra_frameworks(pythons["exca"], headers["exca"])
        rows, ok = collect(frameworks, infra_steps())
        etude_ok = etude_ok and ok and infra_ok
        tables.append((rows, "pydantic infra (SPEC sections 4 and 8)",
                       [("exca", headers["exca"])], "SPEC target", []))
    if only in (None, "slurm"):
        rows, ok = collect(slurm_frameworks(), slurm_steps())
        tables.append((rows, "Slurm: one job array (etude) vs one sbatch per job",
                       [("per-job", "per job")], "SPEC target", []))
    if only in (None, "store"):
        rows, ok, notes = store_table()
        etude_ok = etude_ok and ok
        title = "Store: the index (SQLite), and the scheduler before and after it"
        tables.append((rows, title, [("before store", f"before store ({BEFORE_STORE})")],
                       "target", notes))
    if only in (None, "tracking"):
        frameworks = tracking_frameworks(pythons, headers)
        rows, ok, notes = tracking_table(frameworks)
        etude_ok = etude_ok and ok
        tables.append((rows, "Run tracking: etude.tracking, MLflow (SQLite), Aim, ClearML "
                       "(offline)", [(peer, headers[peer]) for peer in TRACKING_PEERS],
                       "SPEC target", notes))
    if only in (None, "agent"):
        rows, ok, notes = agent_table()
        etude_ok = etude_ok and ok
        tables.append((rows, "Queues and agents (no peer runs this without a server)", [],
                       "target", notes))
    print(
        f"\n{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"best of {IMPORT_REPEATS} (import), {IDENTIFIER_REPEATS} (identifiers), "
        f"{TASK_REPEATS} (tasks, resubmit), {INFRA_REPEATS} (infra), {AB_REPEATS} per side "
        f"(store table, before/after), {INIT_REPEATS} (Run.init), one run for the other "
        "tracking measures; each run in a fresh interpreter. 1-minute load average: "
        f"{load_before:.1f} at the start, {_load():.1f} at the end."
    )
    busy = max(load_before, _load())
    if busy > (os.cpu_count() or 1) * 0.5:
        print(
            f"note: the machine was busy (1-minute load average up to {busy:.1f} on "
            f"{os.cpu_count()} CPUs); timings of process-heavy measures are inflated."
        )
    for rows, title, peers, target, notes in tables:
        print_table(rows, title, peers, target)
        print_notes(rows)
        for note in notes:
            print(note)
    print(f"total benchmark time: {time.perf_counter() - started:.0f} s")
    return 0 if etude_ok else 1


if __name__ == "__main__":
    sys.exit(main())
