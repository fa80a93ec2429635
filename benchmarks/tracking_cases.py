"""The run-tracking side of `make bench`: one workload per call, through etude.tracking or a
peer (MLflow, Aim, ClearML), one `BENCH {json}` line on stdout.

    python benchmarks/tracking_cases.py --lib etude points WS 1000000
    python benchmarks/tracking_cases.py --lib etude read WS 1000000 RUN_ID
    python benchmarks/tracking_cases.py --lib etude many WS 1000
    python benchmarks/tracking_cases.py --lib etude populate WS 100000      (not timed)
    python benchmarks/tracking_cases.py --lib etude filter WS 100000
    python benchmarks/tracking_cases.py --lib etude page WS 100000
    python benchmarks/tracking_cases.py --lib etude init-prepare WS         (not timed)
    python benchmarks/tracking_cases.py --lib etude init WS
    .venv-bench/bin/python benchmarks/tracking_cases.py --lib mlflow ...    (aim, clearml)

The same work through each library, written once per library below (the APIs differ):
- points: COUNT scalar reports of one series from one run, timed from the first report
  through the run's end (the run is created before, untimed); `read` reads them back;
- many: COUNT runs, each with 10 parameters and 3 metrics, created and ended;
- populate, filter, page: COUNT ended runs with 10 parameters and 2 metrics (etude writes
  them straight into the index; the peers make them with their API), then a filter on a
  parameter and a metric, and the first page of 50 by a metric (each the best of
  QUERY_REPEATS calls after a first one, whose time is reported too);
- init: creating a run with the default switches, in a fresh interpreter after the import.

MLflow uses a SQLite backend and a file artifact store; Aim a local repository; ClearML its
offline mode (`Task.set_offline(True)`), reporting from a thread (see `ClearML.setup`).
Every case checks what it made or read (counts, values, order) and exits non-zero when it is
wrong, so that a broken measure fails instead of reporting a fast time. Imports are outside
the timed parts, except in `init`, which times the run's creation only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

LRS = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001)
PAGE = 50
QUERY_REPEATS = 5
LR_BELOW = 0.05  # the filter: params.lr < LR_BELOW and metrics.loss.train < LOSS_BELOW
LOSS_BELOW = 0.5
WHERE = f"params.lr < {LR_BELOW} and metrics.loss.train < {LOSS_BELOW}"
QUIET: dict[str, Any] = {"auto_connect_arg_parser": False, "auto_connect_frameworks": False,
         "auto_resource_monitoring": False, "auto_connect_streams": False}


# -- what every library records -------------------------------------------------------------
def params_of(i: int) -> dict[str, Any]:
    """The 10 parameters of run `i`."""
    return {"lr": LRS[i % len(LRS)], "batch_size": 32 << (i % 4), "epochs": 10 + i % 5,
            "optimizer": ("adam", "sgd", "adamw")[i % 3], "dropout": (i % 4) / 10,
            "layers": 2 + i % 11, "hidden": 64 << (i % 4), "seed": i,
            "augment": i % 2 == 0, "weight_decay": 1e-4 * (1 + i % 3)}


def loss_of(i: int) -> float:
    """The last train loss of run `i`, in [0, 2.5): a fifth are under LOSS_BELOW."""
    return 2.5 * ((i * 0.6180339887498949) % 1.0)


def accuracy_of(i: int) -> float:
    """The accuracy of run `i`, in [0, 1), distinct for every i (so the sort has no ties)."""
    return (i * 0.7548776662466927) % 1.0


def expected_matches(count: int) -> int:
    return sum(1 for i in range(count)
               if params_of(i)["lr"] < LR_BELOW and loss_of(i) < LOSS_BELOW)


def best_accuracies(count: int) -> list[int]:
    """The runs of the first page sorted by accuracy, best first."""
    return sorted(range(count), key=accuracy_of, reverse=True)[:PAGE]


def fail(message: str) -> NoReturn:
    raise SystemExit(f"tracking_cases: {message}")


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """`work`'s wall time, after flushing what earlier cases left for the disk to write
    (untimed: a case must not pay for the one before it, whichever library wrote it)."""
    os.sync()
    began = time.perf_counter()
    result = work()
    return time.perf_counter() - began, result


def best(repeats: int, work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(first call's time, best time of the `repeats` calls after it, last result)."""
    first, result = timed(work)
    times = []
    for _ in range(repeats):
        seconds, result = timed(work)
        times.append(seconds)
    return first, min(times), result


def check_matches(count: int, matched: int) -> None:
    if matched != expected_matches(count):
        fail(f"the filter matched {matched} runs, not {expected_matches(count)}")


def check_page(count: int, page: list[int]) -> None:
    if page != best_accuracies(count):
        fail(f"the page sorted by accuracy is not the {PAGE} best runs in order: {page[:5]}...")


# -- etude ------------------------------------------------------------------------------------
class Etude:
    """etude.tracking: runs in WORKSPACE/runs/, found through the workspace's index."""

    def __init__(self, ws: Path) -> None:
        self.ws = ws

    def points(self, count: int) -> dict[str, Any]:
        from etude.tracking import Run

        run = Run.init(project="bench", name="points", workspace=self.ws, **QUIET)

        def report() -> None:
            for i in range(count):
                run.logger.report_scalar("loss", "train", value=float(i), iteration=i)
            run.close()

        seconds, _ = timed(report)
        return {"seconds": seconds, "run": run.id, "points": count}

    def read(self, count: int, run_id: str) -> dict[str, Any]:
        from etude.tracking import Run

        seconds, (iterations, values) = timed(
            lambda: Run.get(run_id, workspace=self.ws).get_scalars("loss")["loss"]["train"])
        if len(values) != count or len(iterations) != count or float(values[-1]) != count - 1:
            fail(f"read {len(values)} points (last {values[-1] if len(values) else None}), "
                 f"not {count}")
        return {"seconds": seconds, "points": len(values)}

    def many(self, count: int) -> dict[str, Any]:
        from etude.tracking import Run

        def make() -> None:
            for i in range(count):
                run = Run.init(project="bench/many", name=f"r{i}", reuse_last=False,
                               workspace=self.ws, **QUIET)
                run.connect(params_of(i))
                run.logger.report_scalar("loss", "train", value=loss_of(i), iteration=0)
                run.logger.report_single_value("accuracy", accuracy_of(i))
                run.logger.report_single_value("f1", accuracy_of(i) / 2)
                run.close()

        seconds, _ = timed(make)
        found = len(Run.query(project="bench/many", state="completed", workspace=self.ws))
        if found != count:
            fail(f"Run.query finds {found} completed runs, not {count}")
        return {"seconds": seconds, "runs": found}

    def populate(self, count: int) -> dict[str, Any]:
        """`count` ended runs written straight into the index of a workspace (no folders: the
        index keeps them as long as `runs/` is not listed again; runs already in `runs/` are
        ingested first)."""
        from etude.store import open_store, refresh
        from etude.store.database import run_write
        from etude.store.runs import write_runs_in

        (self.ws / "runs").mkdir(parents=True, exist_ok=True)  # listed once by the refresh below
        now, began = time.time(), time.perf_counter()
        with open_store(self.ws) as store:
            refresh(store)
            ws_pk = store.workspace_pk
            for start in range(0, count, 5000):
                records = [_run_record(i, now) for i in range(start, min(start + 5000, count))]

                def write(connection: Any, records: list[Any] = records) -> None:
                    write_runs_in(connection, ws_pk, records)

                run_write(store.engine, write)
            changed = refresh(store).runs
        if changed:
            fail(f"a refresh after writing the index changed {changed} runs")
        return {"runs": count, "seconds": time.perf_counter() - began}

    def filter(self, count: int) -> dict[str, Any]:
        from etude.tracking import Run

        first, seconds, found = best(QUERY_REPEATS, lambda: Run.query(where=WHERE,
                                                                       workspace=self.ws))
        check_matches(count, len(found))
        return {"seconds": seconds, "first": first, "matched": len(found)}

    def page(self, count: int) -> dict[str, Any]:
        from etude.tracking import Run

        first, seconds, page = best(QUERY_REPEATS, lambda: Run.query(
            order_by="-metrics.accuracy", limit=PAGE, workspace=self.ws))
        check_page(count, [int(run.id, 16) for run in page])
        total = len(Run.query(workspace=self.ws))
        if total != count:
            fail(f"the index holds {total} runs, not {count}")
        return {"seconds": seconds, "first": first}

    def init_prepare(self) -> dict[str, Any]:
        from etude.tracking import Run

        Run.init(project="bench", name="first", workspace=self.ws, **QUIET).close()
        return {"prepared": 1}

    def init(self) -> dict[str, Any]:
        import etude.tracking

        seconds, run = timed(lambda: etude.tracking.Run.init(
            project="bench", name="init", reuse_last=False, workspace=self.ws))
        run.close()
        return {"seconds": seconds}


def _run_record(i: int, now: float) -> Any:
    from etude.store.runs import RunRecord

    loss, accuracy = loss_of(i), accuracy_of(i)
    return RunRecord(
        id=f"{i:032x}", kind="run", folder=f"runs/{i:032x}", project="bench/query",
        name=f"r{i}", type="training", state="completed", host="bench",
        created=now - 3600 + i * 1e-3, started=now - 3600 + i * 1e-3, ended=now,
        modified=now, params={f"General/{k}": v for k, v in params_of(i).items()},
        metrics={("loss", "train"): {"last": loss, "min": loss * 0.8, "max": loss * 2 + 1,
                                     "count": 10, "iteration": 9},
                 ("accuracy", "accuracy"): {"last": accuracy, "min": accuracy,
                                            "max": accuracy, "count": 1}},
    )


# -- MLflow -----------------------------------------------------------------------------------
class Mlflow:
    """MLflow with a SQLite backend (WS/mlflow.db) and a file artifact store (WS/artifacts)."""

    def __init__(self, ws: Path) -> None:
        ws.mkdir(parents=True, exist_ok=True)
        os.chdir(ws)  # MLflow may write ./mlruns: not into the checkout
        self.ws = ws
        self.uri = f"sqlite:///{ws / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = self.uri

    def client(self) -> Any:
        """The client, with the experiment `bench` (made by the first call: untimed)."""
        from mlflow import MlflowClient

        client = MlflowClient(self.uri)
        if client.get_experiment_by_name("bench") is None:
            client.create_experiment("bench", artifact_location=(self.ws / "artifacts").as_uri())
        return client

    def experiment_id(self, client: Any) -> str:
        return str(client.get_experiment_by_name("bench").experiment_id)

    def points(self, count: int) -> dict[str, Any]:
        """`log_batch` of 1,000 metrics at a time: MLflow's fastest way in."""
        from mlflow.entities import Metric

        client = self.client()
        run_id = client.create_run(self.experiment_id(client), run_name="points").info.run_id

        def report() -> None:
            stamp = int(time.time() * 1000)
            for start in range(0, count, 1000):
                batch = [Metric("loss", float(i), stamp, i)
                         for i in range(start, min(start + 1000, count))]
                client.log_batch(run_id, metrics=batch)
            client.set_terminated(run_id)

        seconds, _ = timed(report)
        return {"seconds": seconds, "run": run_id, "points": count}

    def read(self, count: int, run_id: str) -> dict[str, Any]:
        from mlflow import MlflowClient

        seconds, history = timed(lambda: MlflowClient(self.uri).get_metric_history(run_id,
                                                                                  "loss"))
        if len(history) != count or max(m.value for m in history) != count - 1:
            fail(f"MLflow read {len(history)} points, not {count}")
        return {"seconds": seconds, "points": len(history)}

    def many(self, count: int) -> dict[str, Any]:
        import mlflow

        mlflow.set_experiment(experiment_id=self.experiment_id(self.client()))

        def make() -> None:
            for i in range(count):
                mlflow.start_run(run_name=f"r{i}")
                mlflow.log_params(params_of(i))
                mlflow.log_metrics({"loss": loss_of(i), "accuracy": accuracy_of(i),
                                    "f1": accuracy_of(i) / 2})
                mlflow.end_run()

        seconds, _ = timed(make)
        found = len(self.client().search_runs([self.experiment_id(self.client())],
                                              max_results=50_000))
        if found != count:
            fail(f"MLflow finds {found} runs, not {count}")
        return {"seconds": seconds, "runs": found}

    def populate(self, count: int) -> dict[str, Any]:
        from mlflow.entities import Metric, Param

        client, began = self.client(), time.perf_counter()
        experiment, stamp = self.experiment_id(client), int(time.time() * 1000)
        for i in range(count):
            run_id = client.create_run(experiment, run_name=f"r{i}").info.run_id
            params = [Param(k, str(v)) for k, v in params_of(i).items()]
            metrics = [Metric("loss", loss_of(i), stamp, 9),
                       Metric("accuracy", accuracy_of(i), stamp, 0)]
            client.log_batch(run_id, metrics=metrics, params=params)
            client.set_terminated(run_id)
        return {"runs": count, "seconds": time.perf_counter() - began}

    def filter(self, count: int) -> dict[str, Any]:
        """Parameters are strings in MLflow, compared only with =, != or LIKE, and its
        filters have no `or`: the condition on lr excludes the values not under LR_BELOW."""
        client = self.client()
        experiment = [self.experiment_id(client)]
        above = " and ".join(f"params.lr != '{lr}'" for lr in LRS if lr >= LR_BELOW)
        where = f"{above} and metrics.loss < {LOSS_BELOW}"
        first, seconds, found = best(QUERY_REPEATS, lambda: client.search_runs(
            experiment, where, max_results=50_000))
        check_matches(count, len(found))
        return {"seconds": seconds, "first": first, "matched": len(found)}

    def page(self, count: int) -> dict[str, Any]:
        client = self.client()
        experiment = [self.experiment_id(client)]
        first, seconds, page = best(QUERY_REPEATS, lambda: client.search_runs(
            experiment, order_by=["metrics.accuracy DESC"], max_results=PAGE))
        check_page(count, [int(run.info.run_name[1:]) for run in page])
        return {"seconds": seconds, "first": first}

    def init_prepare(self) -> dict[str, Any]:
        self.client()  # the database, its tables and the experiment
        return {"prepared": 1}

    def init(self) -> dict[str, Any]:
        import mlflow

        def start() -> Any:
            mlflow.set_experiment("bench")
            return mlflow.start_run(run_name="init")

        seconds, _ = timed(start)
        mlflow.end_run()
        return {"seconds": seconds}


# -- Aim --------------------------------------------------------------------------------------
class Aim:
    """Aim with a local repository in WS. Its readers see a run once the repository's index
    holds it, which `aim up` does in the background: the cases index the runs first, untimed
    (`RepoIndexManager.index`, as `aim up` and `aim runs` do)."""

    OFF = {"system_tracking_interval": None, "capture_terminal_logs": False,
             "log_system_params": False}

    def __init__(self, ws: Path) -> None:
        ws.mkdir(parents=True, exist_ok=True)
        os.chdir(ws)
        self.ws = str(ws)

    def repo(self) -> Any:
        from aim import Repo

        return Repo.from_path(self.ws, init=not Repo.exists(self.ws))

    def index(self) -> float:
        """Index every run of the repository; returns the time it took (reported only)."""
        from aim.sdk.index_manager import RepoIndexManager

        repo = self.repo()
        began, manager = time.perf_counter(), RepoIndexManager.get_index_manager(repo)
        for run_hash in repo.list_all_runs():
            manager.index(run_hash)
        return time.perf_counter() - began

    def points(self, count: int) -> dict[str, Any]:
        from aim import Run

        self.repo()
        run = Run(repo=self.ws, experiment="bench", **self.OFF)

        def report() -> None:
            for i in range(count):
                run.track(float(i), name="loss", step=i, context={"subset": "train"})
            run.close()

        seconds, _ = timed(report)
        return {"seconds": seconds, "run": run.hash, "points": count}

    def read(self, count: int, run_hash: str) -> dict[str, Any]:
        from aim import Repo
        from aim.storage.context import Context

        indexing = self.index()

        def read() -> Any:
            run = Repo.from_path(self.ws).get_run(run_hash)
            return run.get_metric("loss", Context({"subset": "train"})).values.sparse_numpy()

        seconds, (_, values) = timed(read)
        if len(values) != count or (float(min(values)), float(max(values))) != (0, count - 1):
            fail(f"Aim read {len(values)} points, not {count} (0 to {count - 1})")
        return {"seconds": seconds, "points": len(values), "indexing": indexing}

    def many(self, count: int) -> dict[str, Any]:
        from aim import Run

        self.repo()

        def make() -> None:
            for i in range(count):
                run = Run(repo=self.ws, experiment="many", **self.OFF)
                run["hparams"] = params_of(i)
                run.track(loss_of(i), name="loss", step=0, context={"subset": "train"})
                run.track(accuracy_of(i), name="accuracy", step=0)
                run.track(accuracy_of(i) / 2, name="f1", step=0)
                run.close()

        seconds, _ = timed(make)
        found = len(self.repo().list_all_runs())
        if found != count:
            fail(f"the Aim repository holds {found} runs, not {count}")
        return {"seconds": seconds, "runs": found}

    def populate(self, count: int) -> dict[str, Any]:
        from aim import Run

        self.repo()
        began = time.perf_counter()
        for i in range(count):
            run = Run(repo=self.ws, experiment="query", **self.OFF)
            run["hparams"] = params_of(i)
            run["i"] = i
            run.track(loss_of(i), name="loss", step=9, context={"subset": "train"})
            run.track(accuracy_of(i), name="accuracy", step=0)
            run.close()
        return {"runs": count, "seconds": time.perf_counter() - began,
                "indexing": self.index()}

    def filter(self, count: int) -> dict[str, Any]:
        """Aim's queries are Python expressions evaluated run by run."""
        from aim.sdk.types import QueryReportMode

        repo = self.repo()
        where = (f"run.hparams.lr < {LR_BELOW} and "
                 f"run.metrics['loss', {{'subset': 'train'}}].last < {LOSS_BELOW}")
        first, seconds, found = best(QUERY_REPEATS, lambda: list(
            repo.query_runs(where, report_mode=QueryReportMode.DISABLED).iter_runs()))
        check_matches(count, len(found))
        return {"seconds": seconds, "first": first, "matched": len(found)}

    def page(self, count: int) -> dict[str, Any]:
        """Aim has no sort: the page sorts every run's last accuracy here."""
        from aim.sdk.types import QueryReportMode
        from aim.storage.context import Context

        repo = self.repo()

        def page() -> list[int]:
            runs = repo.query_runs("", report_mode=QueryReportMode.DISABLED).iter_runs()
            scored = [(item.run.get_metric("accuracy", Context({})).values.last()[1],
                       item.run["i"]) for item in runs]
            return [i for _, i in sorted(scored, reverse=True)[:PAGE]]

        first, seconds, ordered = best(QUERY_REPEATS, page)
        check_page(count, ordered)
        return {"seconds": seconds, "first": first}

    def init_prepare(self) -> dict[str, Any]:
        self.repo()
        return {"prepared": 1}

    def init(self) -> dict[str, Any]:
        from aim import Run

        seconds, run = timed(lambda: Run(repo=self.ws, experiment="bench"))
        run.close()
        return {"seconds": seconds}


# -- ClearML ----------------------------------------------------------------------------------
class ClearML:
    """ClearML in offline mode: each task is a folder (zipped when it closes) under
    WS/home/.clearml/cache/offline/. Offline mode has no reading or query API."""

    def __init__(self, ws: Path) -> None:
        self.setup(ws)
        self.ws = ws

    @staticmethod
    def setup(ws: Path) -> None:
        """HOME in the workspace (ClearML keeps its cache and settings there), with a
        clearml.conf that reports from a thread: by default on Linux ClearML starts a
        reporting subprocess, which on the 2-CPU development machine was reported lost
        ("switching to thread based reporting") and made close() wait up to ~290 s."""
        home = ws / "home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "clearml.conf").write_text(
            "sdk { development { report_use_subprocess: false } }\n")
        os.environ["HOME"] = str(home)
        os.chdir(ws)

    def offline(self) -> Path:
        return self.ws / "home" / ".clearml" / "cache" / "offline"

    def task(self, name: str, project: str = "bench", quiet: bool = True) -> Any:
        from clearml import Task

        Task.set_offline(offline_mode=True)
        options = QUIET if quiet else {}
        return Task.init(project_name=project, task_name=name, reuse_last_task_id=False,
                         **options)

    def points(self, count: int) -> dict[str, Any]:
        task = self.task("points")

        def report() -> None:
            logger = task.get_logger()
            for i in range(count):
                logger.report_scalar("loss", "train", value=float(i), iteration=i)
            task.close()

        seconds, _ = timed(report)
        written = self.scalars_written()
        if written != count:
            fail(f"the offline session holds {written} scalar events, not {count}")
        return {"seconds": seconds, "run": str(task.id), "points": count}

    def scalars_written(self) -> int:
        total = 0
        for path in self.offline().glob("*/metrics.jsonl"):
            for line in path.read_text().splitlines():
                events = json.loads(line)
                total += sum(1 for e in (events if isinstance(events, list) else [events])
                             if e.get("type") == "training_stats_scalar")
        return total

    def many(self, count: int) -> dict[str, Any]:
        def make() -> None:
            for i in range(count):
                task = self.task(f"r{i}", project="bench/many")
                task.connect(params_of(i))
                logger = task.get_logger()
                logger.report_scalar("loss", "train", value=loss_of(i), iteration=0)
                logger.report_single_value("accuracy", accuracy_of(i))
                logger.report_single_value("f1", accuracy_of(i) / 2)
                task.close()

        seconds, _ = timed(make)
        found = len(list(self.offline().glob("*.zip")))
        if found != count:
            fail(f"{found} offline sessions were stored, not {count}")
        return {"seconds": seconds, "runs": found}

    def init_prepare(self) -> dict[str, Any]:
        return {"prepared": 1}

    def init(self) -> dict[str, Any]:
        import clearml

        clearml.Task.set_offline(offline_mode=True)
        seconds, task = timed(lambda: clearml.Task.init(project_name="bench", task_name="init"))
        task.close()
        return {"seconds": seconds}


LIBRARIES: dict[str, type] = {"etude": Etude, "mlflow": Mlflow, "aim": Aim, "clearml": ClearML}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lib", choices=sorted(LIBRARIES), default="etude")
    parser.add_argument("case", choices=["points", "read", "many", "populate", "filter", "page",
                                         "init-prepare", "init"])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("count", type=int, nargs="?", default=0)
    parser.add_argument("run", nargs="?", default="", help="the run id, for `read`")
    ns = parser.parse_args()
    library = LIBRARIES[ns.lib](ns.workspace.resolve())
    method = getattr(library, ns.case.replace("-", "_"), None)
    if method is None:
        fail(f"{ns.lib} has no `{ns.case}` case")
    if ns.case == "read":
        result = method(ns.count, ns.run)
    elif ns.case in ("init-prepare", "init"):
        result = method()
    else:
        result = method(ns.count)
    print("BENCH " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
