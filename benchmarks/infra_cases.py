"""The pydantic infra side of `make bench`: one workload, run through etude or exca.

    python benchmarks/infra_cases.py --lib etude uids 10000
    python benchmarks/infra_cases.py --lib etude task-first FOLDER 50
    python benchmarks/infra_cases.py --lib etude task-prepare FOLDER 201     (not timed)
    python benchmarks/infra_cases.py --lib etude task-cached FOLDER 201
    python benchmarks/infra_cases.py --lib etude map-first FOLDER 10000
    python benchmarks/infra_cases.py --lib etude map-cached FOLDER 10000
    .venv-bench/bin/python benchmarks/infra_cases.py --lib exca ...           (the same cases)

`etude.infra` re-implements exca's user-facing API (SPEC section 4), so the model classes
below are written once and only the import differs. Written against exca 0.6 (installed by
`benchmarks/run.py` into `.venv-bench`). Every run uses `cluster=None`: the computation
happens in this process, so what is timed is the cache, not job start-up. Each call prints
one `BENCH {json}` line; the timed part excludes the imports.
"""

# No `from __future__ import annotations`: exca reads the annotation of the mapped method's
# argument at class creation and wants a real Sequence[...] there, not a string.
import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pydantic


def _lib() -> str:
    """`--lib` read before argparse: the classes below need the infra at definition time."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--lib" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lib="):
            return arg.split("=", 1)[1]
    return "etude"


LIB = _lib()
if LIB == "exca":
    from exca import MapInfra, TaskInfra
else:
    from etude.infra import MapInfra, TaskInfra

COMPUTED = {"task": 0, "map": 0}  # how many results were computed rather than read back


class Model(pydantic.BaseModel):
    """A model with three parameters and a cached method (the uid and task cases)."""

    seed: int = 0
    coeff: float = 1.0
    name: str = "x"
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def process(self) -> float:
        COMPUTED["task"] += 1
        return self.seed * self.coeff


class Mapper(pydantic.BaseModel):
    """A model whose method maps items to results, cached one result per item."""

    coeff: float = 2.0
    infra: MapInfra = MapInfra(version="1")

    @infra.apply(item_uid=str)
    def process(self, items: Sequence[int]) -> Iterator[float]:
        for item in items:
            COMPUTED["map"] += 1
            yield item * self.coeff


def _model(folder: Path, i: int) -> Model:
    return Model(seed=i, coeff=0.5, name=f"n{i}", infra={"folder": folder})


def uids(count: int) -> dict[str, Any]:
    start = time.perf_counter()
    found = [Model(seed=i, coeff=i * 0.5, name=f"n{i}").infra.uid() for i in range(count)]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "distinct": len(set(found))}


def task_first(folder: Path, count: int) -> dict[str, Any]:
    """First call on `count` new models: computed, then written to the cache."""
    _model(folder, -1).process()  # not timed: first-use imports and folder creation
    start = time.perf_counter()
    total = sum(_model(folder, i).process() for i in range(count))
    seconds = time.perf_counter() - start
    _check(total, sum(i * 0.5 for i in range(count)))
    return {"per_call": seconds / count, "computed": COMPUTED["task"] - 1}


def task_prepare(folder: Path, count: int) -> dict[str, Any]:
    for i in range(count):
        _model(folder, i).process()
    return {"computed": COMPUTED["task"]}


def task_cached(folder: Path, count: int) -> dict[str, Any]:
    """Calls on new models whose results are on disk already (from `task-prepare`)."""
    _model(folder, 0).process()  # not timed: first-use imports
    start = time.perf_counter()
    total = sum(_model(folder, i).process() for i in range(1, count))
    seconds = time.perf_counter() - start
    _check(total, sum(i * 0.5 for i in range(1, count)))
    return {"per_call": seconds / (count - 1), "computed": COMPUTED["task"]}


def map_run(folder: Path, count: int) -> dict[str, Any]:
    """One MapInfra call over `count` items: first run, or a reload in a new process."""
    items = list(range(count))
    start = time.perf_counter()
    results = list(Mapper(infra={"folder": folder}).process(items))
    seconds = time.perf_counter() - start
    _check(sum(results), 2.0 * sum(items))
    return {"seconds": seconds, "items": len(results), "computed": COMPUTED["map"]}


def _check(got: float, expected: float) -> None:
    if got != expected:
        raise SystemExit(f"wrong results: sum {got}, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lib", choices=["etude", "exca"], default="etude")
    parser.add_argument(
        "case",
        choices=["uids", "task-first", "task-prepare", "task-cached", "map-first", "map-cached"],
    )
    parser.add_argument("args", nargs="+")
    ns = parser.parse_args()
    if ns.case == "uids":
        result = uids(int(ns.args[0]))
    else:
        folder, count = Path(ns.args[0]), int(ns.args[1])
        folder.mkdir(parents=True, exist_ok=True)
        case = {
            "task-first": task_first,
            "task-prepare": task_prepare,
            "task-cached": task_cached,
            "map-first": map_run,
            "map-cached": map_run,
        }[ns.case]
        result = case(folder, count)
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
