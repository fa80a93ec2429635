"""Jobs in the UI's API, on SQLite and PostgreSQL: an experiment's dependency graph (from the
jobs' params.json), and retrying a failed job (a real job that fails, then succeeds once its
marker file exists); infra jobs and jobs that have not failed are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .conftest import make_client

HEADERS = {"X-Etude": "1"}

PIPELINE = """
import sys
from pathlib import Path
from etude import Param, Task, experiment

class Prepare(Task):
    size: Param[int]

    def execute(self):
        print("prepared", self.size)

class Learn(Task):
    data: Param[Prepare]
    marker: Param[str]

    def execute(self):
        if not Path(self.marker).exists():
            raise RuntimeError(f"no marker file {self.marker}")
        print("learned on", self.data.size)

class Report(Task):
    learned: Param[Learn]
    data: Param[Prepare]

    def execute(self):
        print("reported")

if __name__ == "__main__":
    with experiment(sys.argv[1], "pipeline"):
        data = Prepare.C(size=3).submit()
        learned = Learn.C(data=data, marker=sys.argv[2]).submit()
        Report.C(learned=learned, data=data).submit()
"""

INFRA = """
import sys
import pydantic
from etude.infra import TaskInfra

class Model(pydantic.BaseModel):
    coeff: float = 1.0
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def fit(self) -> float:
        return self.coeff * 2

if __name__ == "__main__":
    print(Model(coeff=3.0, infra={"folder": sys.argv[1], "cluster": "local"}).fit())
"""


def run_script(tmp_path: Path, source: str, *args: str, env: dict[str, str]) -> None:
    script = tmp_path / "script.py"
    script.write_text(source)
    subprocess.run([sys.executable, str(script), *map(str, args)], cwd=tmp_path,
                   env={**os.environ, **env}, capture_output=True, timeout=120)


def by_task(jobs: list[dict]) -> dict[str, dict]:
    return {job["task"].rsplit(".", 1)[-1]: job for job in jobs}


def test_the_dependency_graph_of_an_experiment(ws, tmp_path, store_env):
    run_script(tmp_path, PIPELINE, ws, tmp_path / "marker", env=store_env)
    with make_client(ws) as client:
        graph = client.get("/api/jobs/graph", params={"experiment": "pipeline"}).json()
        nodes = by_task(graph["nodes"])
        assert {n: job["state"] for n, job in nodes.items()} == {
            "Prepare": "done", "Learn": "error", "Report": "error"}  # its dependency failed
        folder = {n: job["folder"] for n, job in nodes.items()}
        edges = sorted((e["source"], e["target"]) for e in graph["edges"])
        assert edges == sorted([(folder["Prepare"], folder["Learn"]),
                                (folder["Prepare"], folder["Report"]),
                                (folder["Learn"], folder["Report"])])
        assert nodes["Learn"]["run"] and not graph["truncated"]
        page = client.get("/experiments", params={"name": "pipeline"}).text
        assert 'id="job-graph"' in page and "cytoscape.min.js" in page
        assert f'class="retry" data-folder="{folder["Learn"]}" >Retry' in page
        assert f'class="retry" data-folder="{folder["Prepare"]}" hidden' in page
        report = client.get("/api/job", params={"folder": folder["Report"]}).json()
        assert sorted(d["folder"] for d in report["dependencies"]) == sorted(
            [folder["Prepare"], folder["Learn"]])
        page = client.get("/job", params={"folder": folder["Learn"]}).text
        assert "Depends on" in page and f'{nodes["Prepare"]["id"][:12]}</a>' in page
        missing = client.get("/api/jobs/graph")
        assert missing.status_code == 400


def test_a_failed_job_is_retried_with_its_failed_dependency(ws, tmp_path, store_env):
    """Report failed because Learn failed: retrying Report runs Learn again first (its
    marker now exists), then Report; the graph is the same afterwards."""
    marker = tmp_path / "marker"
    run_script(tmp_path, PIPELINE, ws, marker, env=store_env)
    with make_client(ws) as client:
        jobs = by_task(client.get("/api/jobs", params={"experiment": "pipeline"}).json())
        report, learn = jobs["Report"]["folder"], jobs["Learn"]["folder"]
        assert jobs["Report"]["reason"] == "dependency"
        before = client.get("/api/jobs/graph", params={"experiment": "pipeline"}).json()
        refused = client.post("/api/job/retry", json={"folder": jobs["Prepare"]["folder"]},
                              headers=HEADERS)
        assert refused.status_code == 409 and "only a failed job" in refused.json()["error"]
        assert client.post("/api/job/retry", json={"folder": report}).status_code == 403
        marker.touch()
        reply = client.post("/api/job/retry", json={"folder": report}, headers=HEADERS)
        assert reply.status_code == 200, reply.text
        assert reply.json()["started"]
        log = _wait_for_text(ws / report / ".etude/retry.log", "the retry is done")

        def states() -> dict[str, str]:
            found = client.get("/api/jobs", params={"experiment": "pipeline"}).json()
            return {name: job["state"] for name, job in by_task(found).items()}

        deadline = time.monotonic() + 60
        while set(states().values()) != {"done"}:
            assert time.monotonic() < deadline, log
            time.sleep(0.2)
        assert "learned on 3" in next((ws / learn).glob("*.out")).read_text()
        after = client.get("/api/jobs/graph", params={"experiment": "pipeline"}).json()
        assert sorted(map(str, after["edges"])) == sorted(map(str, before["edges"]))


def _wait_for_text(path: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.1)
    raise AssertionError(f"{path} never held {text!r}")


def test_an_infra_job_is_not_retried(ws, tmp_path, store_env):
    run_script(tmp_path, INFRA, ws, env=store_env)
    with make_client(ws) as client:
        [job] = client.get("/api/jobs").json()
        assert job["kind"] == "infra"
        refused = client.post("/api/job/retry", json={"folder": job["folder"]},
                              headers=HEADERS)
        assert refused.status_code == 409 and "infra" in refused.json()["error"]
