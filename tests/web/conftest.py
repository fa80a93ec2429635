"""Web UI tests: an isolated settings folder, a workspace with recorded runs (and a real
experiment's jobs), and the app behind Starlette's test client.

API tests take `store_env` (tests/conftest.py) to run on SQLite and PostgreSQL; the browser
tests (test_browser.py) serve one SQLite workspace from a real `etude ui` process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from etude.tracking import Run
from etude.tracking.query import close_indexes

QUIET = {"auto_connect_arg_parser": False, "auto_connect_frameworks": False,
         "auto_resource_monitoring": False, "auto_connect_streams": False}

EXPERIMENT = """
import sys
from etude import Param, Task, experiment, tag
from etude.tracking import Run

class Learn(Task):
    lr: Param[float]

    def execute(self):
        print("learning at", self.lr)
        run = Run.current()
        for epoch in range(5):
            run.logger.report_scalar("loss", "train", self.lr / (epoch + 1), epoch)

if __name__ == "__main__":
    with experiment(sys.argv[1], "sweep"):
        for lr in (0.1, 0.2):
            Learn.C(lr=tag(lr)).submit()
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ETUDE_WORKSPACE", raising=False)
    monkeypatch.delenv("ETUDE_JOB_FOLDER", raising=False)
    monkeypatch.delenv("ETUDE_UI_TOKEN", raising=False)
    yield
    run = Run.current()
    if run is not None:
        run.close()
    close_indexes()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return tmp_path / "ws"


def record_runs(ws: Path, spike_at: int = 7_777, points: int = 20_000) -> dict[str, str]:
    """Three runs of project vision/mnist (lr 0.1, 0.01, 0.001), with parameters, a spiky
    loss series, a single value, an artifact, a table and an image; returns name -> id."""
    ids = {}
    for k, lr in enumerate((0.1, 0.01, 0.001)):
        with Run.init(project="vision/mnist", name=f"run-{k}", tags=["cnn", f"lr={lr}"],
                      workspace=ws, reuse_last=False, **QUIET) as run:
            run.connect({"lr": lr, "epochs": 3 + k})
            run.connect_configuration({"layers": [1, 2, k]}, name="net")
            run.set_user_properties(dataset="mnist", seed=k)
            values = np.exp(-np.arange(points) / 5000.0) + lr
            values[spike_at] = 50.0 + k
            logger = run.logger
            for i, value in enumerate(values):
                logger.report_scalar("loss", "train", float(value), i)
            logger.report_single_value("accuracy", 0.9 + k / 100)
            logger.report_table("preds", "val", 0, table=[{"a": 1, "b": "x"}])
            logger.report_image("sample", "img", 0,
                                image=np.zeros((8, 8), dtype=np.uint8))
            run.upload_artifact("scores", {"f1": 0.8 + k / 100})
            ids[run.name] = run.id
    return ids


@pytest.fixture
def runs(ws: Path, store_env: dict[str, str]) -> dict[str, str]:
    return record_runs(ws)


def run_experiment(ws: Path, tmp_path: Path, env: dict[str, str]) -> None:
    import os

    script = tmp_path / "xp.py"
    script.write_text(textwrap.dedent(EXPERIMENT))
    subprocess.run([sys.executable, str(script), str(ws)], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120, env={**os.environ, **env})


def make_client(ws: Path, **options: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about httpx versions
        from starlette.testclient import TestClient

    from etude.web import create_app

    return TestClient(create_app(ws, refresh_interval=0, **options),
                      base_url="http://127.0.0.1:8000")


@pytest.fixture
def client(ws: Path, runs: dict[str, str]) -> Iterator[Any]:
    with make_client(ws) as test_client:
        yield test_client
