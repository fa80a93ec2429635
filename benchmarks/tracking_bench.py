"""The run-tracking table of `make bench`: etude.tracking against MLflow, Aim and ClearML,
each running `tracking_cases.py` in a fresh interpreter. The peers do smaller counts
(PEER_*) and their times are scaled up linearly; the row says by how much.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from harness import (
    CaseFailed,
    Framework,
    NotMeasured,
    Row,
    Step,
    best_of,
    collect,
    expect,
    format_seconds,
    measure_startup,
    run_case,
    scratch_dir,
)

HERE = Path(__file__).resolve().parent
TRACKING_PEERS = ("mlflow", "aim", "clearml")
N_POINTS = 1_000_000  # scalar reports from one run
N_RUNS = 1_000  # runs made one after the other
N_INDEXED_RUNS = 100_000  # runs in the index for Run.query
# The peers do less and their times are scaled up linearly to the counts above: at the rates
# measured on the 2-CPU development machine, the full counts take minutes each (MLflow
# log_batch ~100 s for 1,000,000 points, Aim ~175 s; 1,000 runs: MLflow 12-14 s, Aim ~30 s).
PEER_POINTS = {"mlflow": 20_000, "aim": 20_000, "clearml": 50_000}
PEER_RUNS = {"mlflow": 200, "aim": 100, "clearml": 50}
PEER_INDEXED_RUNS = {"mlflow": 500, "aim": 200}  # made with their API, untimed
TRACKING_TIMEOUT = 120.0  # seconds, per case (one fresh interpreter)
FILTER_TIMEOUT = 60.0  # the filter over the index: 300 times its target for etude
INIT_REPEATS = 3
MEMORY_FS = Path("/dev/shm")  # tmpfs on Linux: the 1,000-runs case again, for a note


def _scales(full: int, peers: dict[str, int]) -> dict[str, float]:
    return {label: full / count for label, count in peers.items()}


class TrackingMeasures:
    """The tracking measures of one framework after another, in folders under `root`: the
    read measure reads the run the points measure wrote, the two query measures share one
    populated workspace. Peers do the counts of PEER_* and their times are scaled up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: dict[str, tuple[Path, str, int]] = {}  # label -> (workspace, run, points)
        self.populated: dict[str, tuple[Path, int]] = {}
        self.notes: list[str] = []

    def _count(self, fw: Framework, full: int, peers: dict[str, int]) -> tuple[int, float]:
        """(what `fw` does, the factor its time is scaled by)."""
        count = full if fw.label == "etude" else peers.get(fw.label, 0)
        if not count:
            raise NotMeasured(f"{fw.label}: no count set for this measure")
        return count, full / count

    def points(self, fw: Framework) -> float:
        count, scale = self._count(fw, N_POINTS, PEER_POINTS)
        ws = self.root / fw.label / "points"
        result = run_case(fw, "points", str(ws), str(count))
        expect(result, "points", count, f"{fw.label}: points")
        self.written[fw.label] = (ws, str(result["run"]), count)
        return result["seconds"] * scale

    def read(self, fw: Framework) -> float:
        if fw.label == "clearml":
            raise NotMeasured("ClearML's offline mode has no API to read a run back (only a "
                              "ClearML server serves scalars)")
        if fw.label not in self.written:
            raise CaseFailed("no series to read: writing it failed")
        ws, run, count = self.written[fw.label]
        result = run_case(fw, "read", str(ws), str(count), run)
        expect(result, "points", count, f"{fw.label}: read")
        if "indexing" in result:
            self.notes.append(f"{fw.label}: indexing the run before reading it took "
                              f"{format_seconds(result['indexing'])} (untimed)")
        return result["seconds"] * N_POINTS / count

    def many(self, fw: Framework) -> float:
        count, scale = self._count(fw, N_RUNS, PEER_RUNS)
        result = run_case(fw, "many", str(self.root / fw.label / "many"), str(count))
        expect(result, "runs", count, f"{fw.label}: runs made")
        if fw.label == "etude" and MEMORY_FS.is_dir():
            self._many_in_memory(fw, count)
        return result["seconds"] * scale

    def _many_in_memory(self, fw: Framework, count: int) -> None:
        """The same runs with the workspace in memory (tmpfs): what is left without the
        disk's cost of creating files (a run is a folder of a few small files)."""
        with tempfile.TemporaryDirectory(prefix="etude-bench-", dir=MEMORY_FS) as folder:
            result = run_case(fw, "many", str(Path(folder) / "many"), str(count))
        expect(result, "runs", count, f"{fw.label}: runs made in memory")
        self.notes.append(f"{fw.label}: the {count:,} runs with the workspace in memory "
                          f"({MEMORY_FS}): {format_seconds(result['seconds'])}; the rest of "
                          "the row is the disk creating each run's files")

    def _populate(self, fw: Framework) -> tuple[Path, int]:
        if fw.label == "clearml":
            raise NotMeasured("ClearML's offline mode has no query API (queries go to a "
                              "ClearML server)")
        if fw.label not in self.populated:
            count, _ = self._count(fw, N_INDEXED_RUNS, PEER_INDEXED_RUNS)
            ws = self.root / fw.label / "query"
            made = run_case(replace(fw, timeout=600.0), "populate", str(ws), str(count))
            expect(made, "runs", count, f"{fw.label}: runs made for the queries")
            how = "written into the index" if fw.label == "etude" else "made with its API"
            extra = (f", then indexed in {format_seconds(made['indexing'])}"
                     if "indexing" in made else "")
            self.notes.append(f"{fw.label}: {count:,} runs {how} in "
                              f"{format_seconds(made['seconds'])}"
                              f"{extra} (untimed)")
            self.populated[fw.label] = (ws, count)
        return self.populated[fw.label]

    def filter(self, fw: Framework) -> float:
        ws, count = self._populate(fw)
        result = run_case(replace(fw, timeout=FILTER_TIMEOUT), "filter", str(ws), str(count))
        self.notes.append(f"{fw.label}: the filter matches {result['matched']:,} of "
                          f"{count:,} runs; first call {format_seconds(result['first'])}")
        return result["seconds"] * N_INDEXED_RUNS / count

    def page(self, fw: Framework) -> float:
        ws, count = self._populate(fw)
        result = run_case(fw, "page", str(ws), str(count))
        self.notes.append(f"{fw.label}: first call of the sorted page "
                          f"{format_seconds(result['first'])}")
        return result["seconds"] * N_INDEXED_RUNS / count

    def init(self, fw: Framework) -> float:
        ws = str(self.root / fw.label / "init")
        run_case(fw, "init-prepare", ws)
        return best_of(INIT_REPEATS, lambda: run_case(fw, "init", ws)["seconds"])


def tracking_steps(measures: TrackingMeasures) -> list[Step]:
    points = _scales(N_POINTS, PEER_POINTS)
    indexed = _scales(N_INDEXED_RUNS, PEER_INDEXED_RUNS)
    return [
        ([Row(f"{N_POINTS:,} report_scalar calls from one run, through close()", 2.0, "< 2 s",
              scales=points)], measures.points),
        ([Row(f"reading the {N_POINTS:,}-point series back", 0.3, "< 0.3 s", scales=points)],
         measures.read),
        ([Row(f"{N_RUNS:,} runs, 10 parameters and 3 metrics each", 1.0, "< 1 s",
              scales=_scales(N_RUNS, PEER_RUNS))], measures.many),
        ([Row(f"Run.query: a parameter and a metric condition, {N_INDEXED_RUNS:,} runs", 0.2,
              "< 200 ms", scales=indexed)], measures.filter),
        ([Row("  first page of 50 sorted by a metric", 0.1, "< 100 ms", scales=indexed)],
         measures.page),
        ([Row("Run.init() returning (default switches)", 0.1, "< 100 ms")], measures.init),
        (
            [
                Row("interpreter start (`python -c pass`)", None, "reference"),
                Row("import etude.tracking / mlflow / aim / clearml (beyond start)", 0.1,
                    "< 100 ms"),
            ],
            measure_startup,
        ),
    ]


def tracking_frameworks(pythons: dict[str, Path | None],
                        headers: dict[str, str]) -> list[Framework]:
    """etude and each tracking peer, all running tracking_cases.py."""
    script = HERE / "tracking_cases.py"
    frameworks = [Framework("etude", Path(sys.executable), script, "etude.tracking",
                            timeout=TRACKING_TIMEOUT, args=("--lib", "etude"))]
    for peer in TRACKING_PEERS:
        frameworks.append(Framework(
            peer, pythons[peer], script, peer,
            missing=f"{headers[peer]} could not be installed (see above)",
            timeout=TRACKING_TIMEOUT, args=("--lib", peer)))
    return frameworks


def tracking_table(frameworks: list[Framework]) -> tuple[list[Row], bool, list[str]]:
    """Every tracking measure for etude and each peer, in one scratch folder."""
    with scratch_dir() as root:
        measures = TrackingMeasures(Path(root))
        rows, etude_ok = collect(frameworks, tracking_steps(measures))
    scaled = "; ".join(
        f"{peer}: {PEER_POINTS[peer]:,} points, {PEER_RUNS[peer]:,} runs"
        + (f", queries over {PEER_INDEXED_RUNS[peer]:,} runs" if peer in PEER_INDEXED_RUNS
           else "")
        for peer in TRACKING_PEERS)
    notes = [f"(xN): the peer did 1/N of the work and its time was multiplied by N ({scaled})",
             "clearml reports from a thread (report_use_subprocess: false): its default "
             "reporting subprocess made close() wait minutes here (see benchmarks/README.md)",
             *measures.notes]
    return rows, etude_ok, notes
