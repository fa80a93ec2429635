"""Clones of the runs of pydantic-infra jobs (front door 2), edited, enqueued and run by a real
`etude agent --once`: a TaskInfra job for the new values, the reuse of an unchanged one, a
MapInfra chunk's items, and the failures an agent must report clearly. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from etude.tracking import Run

from .test_agent import DEADLINE_S, agent

MODELS = """\
import sys
from pathlib import Path

import pydantic
from etude.infra import MapInfra, TaskInfra
from etude.tracking import Run

CALLS = Path(__file__).with_name("calls.txt")
GATE = Path(__file__).with_name("gate")  # a negative coeff fails until this file exists


class Inner(pydantic.BaseModel):
    depth: int = 2


class Fit(pydantic.BaseModel):
    coeff: float = 1.0
    inner: Inner = Inner()
    infra: TaskInfra = TaskInfra(version="1")

    @infra.apply
    def fit(self) -> float:
        if self.coeff < 0 and not GATE.exists():
            raise ValueError("negative coeff")
        value = self.coeff * self.inner.depth
        with CALLS.open("a") as calls:
            calls.write(f"fit {value}\\n")
        run = Run.current()  # None when computed in the caller's process (no job)
        if run is not None:
            run.logger.report_single_value("value", value)
        return value


class Scale(pydantic.BaseModel):
    factor: int = 1
    infra: MapInfra = MapInfra(min_samples_per_job=2)

    @infra.apply(item_uid=str)
    def apply(self, items):
        Run.current().logger.report_single_value("items", sum(items))
        for item in items:
            with CALLS.open("a") as calls:
                calls.write(f"scale {item * self.factor}\\n")
            yield item * self.factor


if __name__ == "__main__":
    folder, what = sys.argv[1], sys.argv[2]
    if what == "fit":
        print(Fit(coeff=3.0, infra={"folder": folder, "cluster": "local"}).fit())
    elif what == "scale":
        print(list(Scale(factor=3, infra={"folder": folder, "cluster": "local"}).apply(
            [1, 2, 3, 4])))
    elif what == "debug":
        print(Fit(coeff=3.0, infra={"folder": folder, "cluster": "debug"}).fit())
    elif what == "fail":
        try:
            Fit(coeff=-1.0, infra={"folder": folder, "cluster": "local"}).fit()
        except Exception as error:
            print("failed:", type(error).__name__)
    else:
        print(Fit(coeff=3.0, infra={"folder": folder}).fit())  # in this process
"""


@pytest.fixture
def env(ws: Path, store_env: dict[str, str]) -> dict[str, str]:
    """What child processes (scripts, agents) get: this workspace, this store."""
    values = {**os.environ, **store_env, "ETUDE_WORKSPACE": str(ws)}
    values.pop("ETUDE_JOB_FOLDER", None)
    os.environ["ETUDE_WORKSPACE"] = str(ws)
    return values


def compute(tmp_path: Path, ws: Path, env: dict[str, str], what: str) -> Path:
    """Run the models' script for `what`; returns the file listing every computation."""
    script = tmp_path / "models.py"
    script.write_text(MODELS)
    done = subprocess.run([sys.executable, str(script), str(ws), what], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=DEADLINE_S)
    assert done.returncode == 0, done.stderr
    return tmp_path / "calls.txt"


def relative(run: Run, ws: Path) -> str:
    assert run.job is not None
    return Path(run.job["folder"]).relative_to(ws).as_posix()


def test_a_clone_of_a_task_infra_jobs_run_computes_the_edited_values_once(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    calls = compute(tmp_path, ws, env, "fit")
    (source,) = Run.query(name="fit", workspace=ws)
    assert source.params["Config/coeff"] == 3.0 and source.params["Config/inner.depth"] == 2

    edited = Run.clone(source, name="coeff 5")
    edited.set_parameter("Config/coeff", 5.0)
    edited.set_parameter("Config/inner.depth", 3)
    edited.enqueue("default")
    same = Run.clone(source, name="unchanged")
    same.enqueue("default")
    agent(env, "--once")

    ran = Run.get(edited.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    (new_job,) = [r for r in Run.query(where="params.coeff = 5", workspace=ws) if r.job]
    assert new_job.params["Config/inner.depth"] == 3
    assert new_job.metrics["value"]["value"]["last"] == 15.0
    folder = ran._read_meta()["executed_job"]
    assert folder == relative(new_job, ws)
    assert folder.startswith("models.Fit.fit,1/") and (ws / folder / "result.pkl").is_file()
    # The unchanged clone is the source's uid: its cached result, nothing computed again.
    unchanged = Run.get(same.id, workspace=ws)
    assert unchanged.state == "completed", unchanged.console()
    assert unchanged._read_meta()["executed_job"] == relative(source, ws)
    assert calls.read_text().splitlines() == ["fit 6.0", "fit 15.0"]


@pytest.mark.parametrize(("path", "value", "expected"), [
    pytest.param("Config/coeff", "not a number", "Config/coeff: Input should be a valid number",
                 id="wrong-type"),
    pytest.param("Config/inner.dept", 3, "Config/inner.dept: 'inner.dept' is not a field of "
                 "Inner (fields: depth)", id="no-such-field"),
])
def test_a_bad_edit_of_an_infra_jobs_clone_fails_naming_the_parameter(
        tmp_path: Path, ws: Path, env: dict[str, str], path: str, value: object,
        expected: str) -> None:
    calls = compute(tmp_path, ws, env, "fit")
    (source,) = Run.query(name="fit", workspace=ws)
    draft = Run.clone(source, name="bad")
    draft.set_parameter(path, value)
    draft.enqueue("default")
    agent(env, "--once")

    failed = Run.get(draft.id, workspace=ws)
    assert failed.state == "failed"
    assert expected in (failed.message or ""), failed.message
    assert calls.read_text().splitlines() == ["fit 6.0"]


def test_a_clone_of_a_map_infra_chunks_run_computes_its_items_with_the_edits(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    calls = compute(tmp_path, ws, env, "scale")
    chunks = [r for r in Run.query(name="apply", workspace=ws)
              if r.job and "/jobs/" in r.job["folder"]]
    assert chunks and all(r.state == "completed" for r in chunks)
    source = chunks[0]
    draft = Run.clone(source, name="factor 10")
    draft.set_parameter("Config/factor", 10)
    draft.enqueue("default")
    agent(env, "--once")

    ran = Run.get(draft.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    (new_chunk,) = [r for r in Run.query(where="params.factor = 10", workspace=ws)
                    if r.job and "/jobs/" in r.job["folder"]]
    assert new_chunk.state == "completed"
    assert relative(new_chunk, ws).startswith(ran._read_meta()["executed_job"] + "/jobs/")
    # The source chunk's items (the sum of them, reported by the job), times 10, and no others.
    items = source.metrics["items"]["items"]["last"]
    assert new_chunk.metrics["items"]["items"]["last"] == items
    again = [int(line.split()[1]) for line in calls.read_text().splitlines()[4:]]
    assert sum(again) == 10 * items and all(value % 10 == 0 for value in again)


def test_a_clone_of_an_infra_result_computed_in_process_fails_saying_what_to_do(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    compute(tmp_path, ws, env, "in-process")
    (source,) = Run.query(name="fit", workspace=ws)
    draft = Run.clone(source, name="coeff 5")
    draft.set_parameter("Config/coeff", 5.0)
    draft.enqueue("default")
    agent(env, "--once")

    failed = Run.get(draft.id, workspace=ws)
    assert failed.state == "failed"
    assert "cluster=None" in (failed.message or "") and "cluster='local'" in failed.message


def test_a_failure_is_kept_for_an_unchanged_clone_and_computed_again_with_mode_retry(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    compute(tmp_path, ws, env, "fail")
    (source,) = Run.query(name="fit", workspace=ws)
    assert source.state == "failed"
    (tmp_path / "gate").write_text("open")
    same = Run.clone(source, name="unchanged")
    same.enqueue("default")
    retry = Run.clone(source, name="retry")
    retry.set_parameter("Config/infra.mode", "retry")
    retry.enqueue("default")
    agent(env, "--once")

    kept = Run.get(same.id, workspace=ws)
    assert kept.state == "failed"
    assert "negative coeff" in (kept.message or "")
    assert "set Config/infra.mode to 'retry'" in (kept.message or "")
    again = Run.get(retry.id, workspace=ws)
    assert again.state == "completed", again.console()
    assert again._read_meta()["executed_job"] == relative(source, ws)
    assert (tmp_path / "calls.txt").read_text().splitlines() == ["fit -2.0"]


def test_a_clone_of_a_debug_infra_job_runs_as_a_local_job(
        tmp_path: Path, ws: Path, env: dict[str, str]) -> None:
    calls = compute(tmp_path, ws, env, "debug")
    (source,) = Run.query(name="fit", workspace=ws)
    draft = Run.clone(source, name="coeff 4")
    draft.set_parameter("Config/coeff", 4.0)
    draft.enqueue("default")
    agent(env, "--once")

    ran = Run.get(draft.id, workspace=ws)
    assert ran.state == "completed", ran.console()
    assert "cluster 'debug' runs as 'local'" in ran.console()
    (new_job,) = [r for r in Run.query(where="params.coeff = 4", workspace=ws) if r.job]
    # its own job process, hence its own run with the method's metric
    assert new_job.metrics["value"]["value"]["last"] == 8.0
    assert (ws / relative(new_job, ws) / ".etude" / "scheduled.json").is_file()
    assert calls.read_text().splitlines() == ["fit 6.0", "fit 8.0"]
