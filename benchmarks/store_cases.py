"""The index's side of `make bench`: one workload per call, one `BENCH {json}` line on stdout.

    python benchmarks/store_cases.py generate WORKSPACE 100000   (not timed)
    python benchmarks/store_cases.py query WORKSPACE
    python benchmarks/store_cases.py cli-list WORKSPACE 100000
    python benchmarks/store_cases.py folders WORKSPACE 10000     (not timed)
    python benchmarks/store_cases.py rebuild WORKSPACE 10000

`generate` writes jobs straight into the index of a fresh workspace (`Store.write_jobs`, in
batches of BATCH), as an experiment's index writer would, without making their folders: done
and failed jobs need none, since a reader drops an indexed job only when the folder holding
its folder is listed again or when it is not ended. The few running jobs are the exception:
every reader reads them again from their folders, so they get real folders, and the cases
that read the index through `refresh` hold their locks meanwhile, as running job processes
would. `folders` writes job folders the way an experiment and its job processes leave them
(`params.json` with the serialized configuration, the markers, the experiment's run record),
without running anything. `benchmarks/run.py` calls each case in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from etude import Config, Param, Task, identifier

BATCH = 5_000  # jobs per write_jobs call when generating the index
N_RUNNING = 100  # jobs left running (real folders, locks held while the index is read)
TASKS = (
    "bench.Train", "bench.Finetune", "bench.Evaluate", "bench.Preprocess", "bench.Tokenize",
    "bench.Distill", "bench.Export", "bench.Ablate",
)
ERROR_SHARE = 0.11  # of the jobs that are not running; the rest are done
REASONS = ("error",) * 7 + ("timeout",) * 2 + ("killed",)
LRS = (0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001)
MODELS = ("cnn", "mlp", "resnet", "transformer")
DATASETS = ("cifar10", "cifar100", "imagenet", "mnist")
MONTH = 30 * 86_400.0
PAGE = 50
QUERY_REPEATS = 5
CLI_REPEATS = 3
REBUILD_REPEATS = 2
FILTER = 'params.lr < 0.01 and tags.model = "cnn" and state = done'
COUNT_FILTER = 'params.lr < 0.01 and tags.model = "cnn"'  # counted per state


class Model(Config):
    """The nested configuration of a training job."""

    hidden: Param[int]
    dropout: Param[float]
    activation: Param[str]


class Train(Task):
    """A training job: ten flattened parameters, as the generated ones have."""

    __etude_name__ = "bench.Train"
    lr: Param[float]
    layers: Param[int]
    seed: Param[int]
    batch_size: Param[int]
    augment: Param[bool]
    optimizer: Param[str]
    model: Param[Model]

    def execute(self) -> None:
        pass


def _train(rng: random.Random) -> tuple[Train, dict[str, Any]]:
    """A random training configuration and its tags."""
    kind = rng.choice(MODELS)
    model = Model.C(
        hidden=rng.choice((64, 128, 256, 512)),
        dropout=rng.choice((0.0, 0.1, 0.3)),
        activation=rng.choice(("relu", "gelu")),
    )
    task = Train.C(
        lr=rng.choice(LRS),
        layers=rng.randint(2, 12),
        seed=rng.randrange(1_000_000),
        batch_size=rng.choice((32, 64, 128, 256)),
        augment=rng.random() < 0.5,
        optimizer=rng.choice(("adam", "sgd", "adamw")),
        model=model,
    )
    tags = {"model": kind, "dataset": rng.choice(DATASETS)}
    if rng.random() < 0.4:
        tags["sweep"] = f"s{rng.randrange(20)}"
    return task, tags


def _serialized(task: Train) -> dict[str, Any]:
    """The configuration as params.json holds it (see Experiment._make_job)."""
    from etude.config.naming import type_name
    from etude.config.serialize import dump
    from etude.workspace.layout import short_name

    return dump(task, root_path=short_name(type_name(Train)))


def _times(rng: random.Random, now: float, state: str) -> tuple[float, float, float | None]:
    """(submitted, started, ended) within the last month."""
    submitted = now - rng.random() * MONTH
    started = submitted + rng.random() * 600
    ended = None if state == "running" else started + rng.uniform(60, 6 * 3600)
    return submitted, started, ended


# -- the index of many jobs ------------------------------------------------------------------
def _synthetic(i: int, rng: random.Random, now: float, experiment: str) -> Any:
    """A done or failed job, written to the index only (no folder)."""
    from etude.store.records import JobRecord, typed_value

    task = rng.choice(TASKS)
    state = "error" if rng.random() < ERROR_SHARE else "done"
    reason = rng.choice(REASONS) if state == "error" else None
    submitted, started, ended = _times(rng, now, state)
    config, tags = _train(rng)
    model = config.model
    params = {
        "lr": typed_value(config.lr),
        "layers": typed_value(config.layers),
        "seed": typed_value(config.seed),
        "batch_size": typed_value(config.batch_size),
        "augment": typed_value(config.augment),
        "optimizer": typed_value(config.optimizer),
        "model": ("type", None, "store_cases.Model"),  # as flatten_config names it
        "model.hidden": typed_value(model.hidden),
        "model.dropout": typed_value(model.dropout),
        "model.activation": typed_value(model.activation),
    }
    job_id = f"{i:08x}{rng.getrandbits(224):056x}"
    return JobRecord(
        folder=f"jobs/{task.lower()}/{job_id}", id=job_id, task=task, state=state,
        reason=reason, message=f"RuntimeError: run {i} diverged" if reason == "error" else None,
        submitted=submitted, started=started, ended=ended, launcher="direct",
        experiment=experiment, tags=tags, params=params,
    )


def _running(ws: Any, rng: random.Random, now: float, experiment: str) -> Any:
    """A running job: a real folder (params.json, scheduled and process markers) whose lock the
    cases hold while they read the index; its record as the experiment's index writer sends it."""
    from etude.config.naming import type_name
    from etude.store.records import JobRecord, flatten_config

    config, tags = _train(rng)
    name, job_id = type_name(Train), identifier(config)
    folder = ws.job_dir(name, job_id)
    submitted, started, _ = _times(rng, now, "running")
    params = _write_folder(ws, folder, config, tags, experiment, submitted, started, None)
    return JobRecord(
        folder=folder.path.relative_to(ws.path).as_posix(), id=job_id, task=name,
        state="running", submitted=submitted, started=started, launcher="direct",
        experiment=experiment, tags=tags, params=flatten_config(params["config"]),
    )


def generate(workspace: Path, count: int) -> dict[str, object]:
    """`count` jobs in the index of a new workspace, N_RUNNING of them running."""
    from etude.store import open_store
    from etude.store.reconcile import containers

    rng, now, began = random.Random(20261121), time.time(), time.perf_counter()
    every = max(1, count // N_RUNNING)
    with open_store(workspace) as store:
        for start in range(0, count, BATCH):
            experiment = f"sweep-{start // BATCH:02d}"
            records = [
                _running(store.workspace, rng, now, experiment)
                if i % every == every - 1
                else _synthetic(i, rng, now, experiment)
                for i in range(start, min(start + BATCH, count))
            ]
            store.write_jobs(records, experiment=experiment)
        # The index has seen the folders as they are now (as after a first listing), so a
        # reader does not list them again and drop the jobs that have no folder.
        store.set_scanned(containers(store.workspace), replace=True)
        total = sum(store.count_jobs().values())
    return {"jobs": total, "seconds": time.perf_counter() - began}


@contextmanager
def running_jobs_held(store: Any) -> Iterator[int]:
    """Hold the locks of the jobs the index holds as running, as their processes would."""
    from etude.workspace import FileLock, JobDir

    with ExitStack() as stack:
        held = 0
        for folder, _, _ in store.live_jobs():
            lock = FileLock(JobDir(store.workspace.path / folder, "train").lock)
            if not lock.try_acquire():
                raise RuntimeError(f"{lock.path} is held by another process")
            stack.callback(lock.release)
            held += 1
        yield held


def _best(repeats: int, work: Any) -> tuple[float, Any]:
    """(best wall time of `repeats` calls of `work()`, its last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - began)
    return best, result


def query(workspace: Path) -> dict[str, object]:
    """A filtered, sorted page; a count per state; the page sorted by a parameter. Each timed
    best of QUERY_REPEATS after one untimed warm-up query (connection, filter module)."""
    from etude.store import open_store

    with open_store(workspace) as store:
        store.query_jobs(FILTER, sort="-submitted", limit=PAGE)
        page_s, page = _best(QUERY_REPEATS, lambda: store.query_jobs(
            FILTER, sort="-submitted", limit=PAGE))
        count_s, counts = _best(QUERY_REPEATS, lambda: store.count_jobs(COUNT_FILTER))
        by_param_s, by_param = _best(QUERY_REPEATS, lambda: store.query_jobs(
            FILTER, sort="params.lr", limit=PAGE))
        matching = store.count_jobs(FILTER).get("done", 0)
    submitted = [row.submitted for row in page]
    if len(page) != PAGE or submitted != sorted(submitted, reverse=True):
        raise SystemExit(f"the page is not {PAGE} jobs by submission time, newest first")
    if len(by_param) != PAGE or any(row.state != "done" for row in page + by_param):
        raise SystemExit(f"the pages hold jobs that are not done, or fewer than {PAGE}")
    return {"page": page_s, "count": count_s, "by_param": by_param_s, "matching": matching,
            "counts": counts}


# -- the command line on that index ------------------------------------------------------------
def _cli(workspace: Path, *args: str) -> str:
    argv = [sys.executable, "-m", "etude.cli", *args, "-w", str(workspace)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def cli_list(workspace: Path, count: int) -> dict[str, object]:
    """`etude jobs list --where ... --limit 50 --json`, end to end: best wall time of
    CLI_REPEATS after one untimed call; then checks that the index still holds every job."""
    from etude.store import open_store, refresh

    argv = ("jobs", "list", "--where", FILTER, "--sort", "-submitted", "--limit", str(PAGE),
            "--json")
    with open_store(workspace) as store, running_jobs_held(store) as held:
        _cli(workspace, *argv)
        seconds, out = _best(CLI_REPEATS, lambda: _cli(workspace, *argv))
        refresh_s, changes = _best(CLI_REPEATS, lambda: refresh(store))
        left = sum(store.count_jobs().values())
    rows = json.loads(out)
    if len(rows) != PAGE or any(row["state"] != "done" for row in rows):
        raise SystemExit(f"`jobs list` printed {len(rows)} rows (or jobs not done), not {PAGE}")
    if left != count or changes:
        raise SystemExit(f"the index holds {left} jobs after `jobs list`, not {count}; the "
                         f"last reconciliation changed {changes}")
    return {"seconds": seconds, "refresh": refresh_s, "jobs_after": left, "running": held}


# -- real job folders and `etude index rebuild` ------------------------------------------------
def _write_folder(
    ws: Any, folder: Any, config: Train, tags: dict[str, Any], experiment: str,
    submitted: float, started: float, ended: float | None, reason: str | None = None,
) -> dict[str, Any]:
    """The files an experiment and the job process leave in a job folder; returns params."""
    from etude.config.naming import type_name

    host = socket.gethostname()
    params = {
        "id": folder.job_id, "type": type_name(Train), "workspace": str(ws.path),
        "experiment": experiment, "tags": tags, "dependencies": [], "requirements": None,
        "max_retries": 0, "config": _serialized(config),
    }
    scheduled = {"pid": os.getpid(), "host": host, "create_time": submitted,
                 "experiment": experiment, "submitted": submitted}
    process = {"host": host, "started": started, "experiment": experiment, "pid": os.getpid(),
               "create_time": started, "launcher": "direct"}
    folder.meta.mkdir(parents=True, exist_ok=True)
    folder.params.write_text(json.dumps(params))
    folder.scheduled.write_text(json.dumps(scheduled))
    folder.process.write_text(json.dumps(process))
    if ended is not None and reason is None:
        folder.done.write_text(json.dumps({"started": started, "ended": ended}))
    elif ended is not None:
        failed = {"reason": reason, "type": "builtins.RuntimeError", "message": "diverged",
                  "traceback": "Traceback ...\nRuntimeError: diverged\n", "started": started,
                  "ended": ended}
        folder.failed.write_text(json.dumps(failed))
    return params


def folders(workspace: Path, count: int) -> dict[str, object]:
    """`count` finished training jobs (a tenth failed) of one experiment, as folders."""
    from etude.config.naming import type_name
    from etude.workspace import Workspace

    ws, rng, now = Workspace(workspace), random.Random(20261122), time.time()
    entries: list[dict[str, str]] = []
    while len(entries) < count:
        config, tags = _train(rng)
        folder = ws.job_dir(type_name(Train), identifier(config))
        if folder.path.exists():
            continue  # the same configuration drawn twice
        submitted, started, ended = _times(rng, now, "done")
        reason = rng.choice(REASONS) if rng.random() < 0.1 else None
        _write_folder(ws, folder, config, tags, "bench", submitted, started, ended, reason)
        entries.append({"id": folder.job_id, "task": type_name(Train), "path": str(folder.path)})
    run = {"name": "bench", "workspace": str(ws.path), "started": now - 3600, "ended": now,
           "process": {"pid": os.getpid(), "host": socket.gethostname()}, "jobs": entries}
    (ws.experiments / "bench").mkdir(parents=True, exist_ok=True)
    (ws.experiments / "bench" / "runs.jsonl").write_text(json.dumps(run) + "\n")
    return {"prepared": len(entries)}


def rebuild(workspace: Path, count: int) -> dict[str, object]:
    """`etude index rebuild`, end to end: best wall time of REBUILD_REPEATS (the first one
    also creates the index); then checks that it indexed `count` jobs."""
    from etude.store import open_store

    times = []
    for _ in range(REBUILD_REPEATS):
        began = time.perf_counter()
        out = _cli(workspace, "index", "rebuild")
        times.append(time.perf_counter() - began)
    with open_store(workspace) as store:
        indexed = sum(store.count_jobs().values())
    if indexed != count or f"Indexed {count} jobs" not in out:
        raise SystemExit(f"`etude index rebuild` indexed {indexed} jobs, not {count}: {out}")
    return {"seconds": min(times), "first": times[0], "indexed": indexed}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("case", choices=["generate", "query", "cli-list", "folders", "rebuild"])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("count", type=int, nargs="?", default=0)
    ns = parser.parse_args()
    if ns.case == "query":
        result = query(ns.workspace)
    else:
        cases = {"generate": generate, "cli-list": cli_list, "folders": folders,
                 "rebuild": rebuild}
        result = cases[ns.case](ns.workspace, ns.count)
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
