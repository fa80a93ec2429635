"""The JSON API under /api/, on SQLite and PostgreSQL: the runs table (grammar, sort, paging,
columns), one run, scalars reduced per pixel, console by offsets, outputs as bytes, edits,
compare, experiments and jobs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from etude.tracking import Run

from .conftest import make_client, run_experiment


def test_runs_filtered_by_the_grammar_and_sorted_by_a_metric(client, runs):
    reply = client.get("/api/runs", params={
        "where": "params.lr < 0.05 and tags has cnn", "sort": "-metrics.accuracy",
        "columns": "params.lr,metrics.loss.train.max,user.dataset"})
    assert reply.status_code == 200
    data = reply.json()
    assert data["total"] == 2
    assert [row["name"] for row in data["rows"]] == ["run-2", "run-1"]
    assert data["rows"][0]["values"] == {"params.lr": 0.001, "metrics.loss.train.max": 52.0,
                                         "user.dataset": "mnist"}
    assert "took_ms" in data


def test_runs_are_paged(client, runs):
    first = client.get("/api/runs", params={"sort": "name", "limit": 2}).json()
    second = client.get("/api/runs", params={"sort": "name", "limit": 2, "offset": 2}).json()
    assert first["total"] == second["total"] == 3
    assert [r["name"] for r in first["rows"] + second["rows"]] == ["run-0", "run-1", "run-2"]


def test_a_bad_filter_says_where(client, runs):
    reply = client.get("/api/runs", params={"where": "params.lr < 0.05 and stat = done"})
    assert reply.status_code == 400
    data = reply.json()
    assert data["column"] == 22
    assert "stat" in data["error"] and "state" in data["error"]


def test_fields_for_completion(client, runs):
    data = client.get("/api/runs/fields").json()
    assert "lr" in data["params"] and ["loss", "train"] in data["metrics"]
    assert "dataset" in data["user"] and "state" in data["fields"]


def test_one_run_has_its_sections(client, runs):
    data = client.get(f"/api/runs/{runs['run-1'][:10]}").json()
    assert data["errors"] == {}
    assert data["run"]["name"] == "run-1" and data["run"]["tags"] == ["cnn", "lr=0.01"]
    assert data["params"] == {"General/lr": 0.01, "General/epochs": 4}
    assert data["configuration"] == {"net": {"layers": [1, 2, 1]}}
    assert data["user_properties"] == {"dataset": "mnist", "seed": 1}
    assert data["metrics"]["loss"]["train"]["count"] == 20_000
    assert [a["name"] for a in data["outputs"]["artifacts"]] == ["scores"]


def test_an_unknown_run_is_404(client, runs):
    assert client.get("/api/runs/ffffffffffff").status_code == 404


def test_a_long_series_is_reduced_per_pixel_keeping_its_spikes(client, runs):
    reply = client.get(f"/api/runs/{runs['run-0']}/chart",
                       params={"title": "loss", "width": 100}).json()
    [series] = reply["series"]
    assert series["reduced"] and series["points"] == 20_000
    assert len(series["x"]) <= 4 * 100 + 2
    assert max(series["y"]) == 50.0  # the one-point spike at 7,777 survives
    assert series["x"][0] == 0 and series["x"][-1] == 19_999


def test_zoomed_in_every_point_is_sent(client, runs):
    reply = client.get(f"/api/runs/{runs['run-0']}/chart", params={
        "title": "loss", "width": 1000, "xmin": 7_700, "xmax": 7_800}).json()
    [series] = reply["series"]
    assert not series["reduced"]
    assert series["x"] == list(range(7_699, 7_802))  # the range and one point on each side


def test_chart_by_time_and_smoothed(client, runs):
    reply = client.get(f"/api/runs/{runs['run-0']}/chart", params={
        "title": "loss", "width": 50, "x": "relative", "smooth": 0.9})
    [series] = reply.json()["series"]
    assert series["x"][0] >= 0 and max(series["y"]) < 50.0  # smoothing spreads the spike
    bad = client.get(f"/api/runs/{runs['run-0']}/chart", params={"title": "loss", "x": "epoch"})
    assert bad.status_code == 400 and "iteration" in bad.json()["error"]


def test_console_tail_then_new_text_from_an_offset(client, runs, ws):
    run = Run.get(runs["run-0"], workspace=ws)
    console = run.folder / "console.log"
    console.write_bytes(b"first line\n" + "é".encode()[:1])  # a cut character
    first = client.get(f"/api/runs/{run.id}/console").json()
    assert first["text"] == "first line\n" and first["next"] == len("first line\n")
    with open(console, "ab") as stream:
        stream.write("é".encode()[1:] + b" second\n")
    second = client.get(f"/api/runs/{run.id}/console", params={"offset": first["next"]}).json()
    assert second["text"] == "é second\n"
    assert second["next"] == second["size"] == console.stat().st_size
    download = client.get(f"/api/runs/{run.id}/console/download")
    assert download.content == console.read_bytes()
    assert download.headers["content-disposition"].startswith("attachment")


def test_an_artifact_is_downloaded_as_its_bytes(client, runs, ws):
    reply = client.get(f"/api/runs/{runs['run-0']}/outputs/artifact/scores")
    assert reply.status_code == 200
    assert reply.json() == {"f1": 0.8}
    record = Run.get(runs["run-0"], workspace=ws).artifacts["scores"]
    assert hashlib.sha256(reply.content).hexdigest() == record.sha256
    assert "scores.json" in reply.headers["content-disposition"]
    missing = client.get(f"/api/runs/{runs['run-0']}/outputs/artifact/nothing")
    assert missing.status_code == 404 and "scores" in missing.json()["error"]


def test_reported_files_are_listed_and_served(client, runs):
    events = client.get(f"/api/runs/{runs['run-0']}/events").json()
    image = next(e for e in events if e["kind"] == "image")
    reply = client.get(f"/api/runs/{runs['run-0']}/file", params={"path": image["file"]})
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    assert reply.content.startswith(b"\x89PNG")


def test_tags_and_archive_in_bulk(client, runs):
    ids = [runs["run-0"], runs["run-1"]]
    headers = {"X-Etude": "1"}
    reply = client.post("/api/runs/bulk", json={"ids": ids, "add": ["best"]}, headers=headers)
    assert reply.status_code == 200
    tagged = client.get("/api/runs", params={"where": "tags has best"}).json()
    assert sorted(r["id"] for r in tagged["rows"]) == sorted(ids)
    client.post("/api/runs/bulk", json={"ids": ids[:1], "archive": True}, headers=headers)
    assert client.get("/api/runs").json()["total"] == 2
    assert client.get("/api/runs", params={"archived": "true"}).json()["total"] == 3


def test_user_properties_are_edited_and_a_published_run_refuses(client, runs, ws):
    headers = {"X-Etude": "1"}
    reply = client.post(f"/api/runs/{runs['run-2']}/properties",
                        json={"properties": {"note": "good"}}, headers=headers)
    assert reply.json()["user_properties"]["note"] == "good"
    assert client.get("/api/runs", params={"where": "user.note = good"}).json()["total"] == 1
    Run.get(runs["run-2"], workspace=ws).publish()
    refused = client.post(f"/api/runs/{runs['run-2']}/tags", json={"add": ["x"]},
                          headers=headers)
    assert refused.status_code == 409 and "published" in refused.json()["error"]


def test_compare_shows_differences_and_last_metrics(client, runs):
    ids = ",".join(runs[name] for name in ("run-0", "run-2"))
    data = client.get("/api/compare", params={"ids": ids}).json()
    params = {p["key"]: p for p in data["params"]}
    assert params["General/lr"]["values"] == [0.1, 0.001] and params["General/lr"]["differs"]
    accuracy = next(m for m in data["metrics"] if m["title"] == "accuracy")
    assert accuracy["values"] == [0.9, 0.92]
    chart = client.get("/api/compare/chart", params={"ids": ids, "title": "loss",
                                                     "width": 200}).json()
    assert [s["name"] for s in chart["series"]] == [
        f"run-0 {runs['run-0'][:8]}/train", f"run-2 {runs['run-2'][:8]}/train"]
    one = client.get("/api/compare", params={"ids": runs["run-0"]})
    assert one.status_code == 400 and "2 to 20" in one.json()["error"]


def test_experiments_and_their_jobs(ws, tmp_path, store_env):
    run_experiment(ws, tmp_path, store_env)
    with make_client(ws) as client:
        [sweep] = client.get("/api/experiments").json()
        assert sweep["name"] == "sweep" and sweep["states"] == {"done": 2}
        jobs = client.get("/api/jobs", params={"experiment": "sweep"}).json()
        assert sorted(job["tags"]["lr"] for job in jobs) == [0.1, 0.2]
        only = client.get("/api/jobs", params={"experiment": "sweep", "tag": "lr=0.2"}).json()
        assert len(only) == 1
        job = client.get("/api/job", params={"folder": only[0]["folder"]}).json()
        assert job["params"]["lr"] == 0.2 and job["run"] == only[0]["run"]
        out = next(f["path"] for f in job["files"] if f["path"].endswith(".out"))
        text = client.get("/api/job/file", params={"folder": job["folder"], "path": out})
        assert text.json()["text"] == "learning at 0.2\n"
        run = client.get(f"/api/runs/{job['run']}").json()
        assert run["run"]["job"]["folder"] == job["folder"]
        console = client.get(f"/api/runs/{job['run']}/console").json()
        assert console["text"] == "learning at 0.2\n"


@pytest.mark.parametrize("page", ["/experiments", "/runs", "/compare"])
def test_pages_render(client, page):
    reply = client.get(page)
    assert reply.status_code == 200


def test_run_and_compare_pages_render(client, runs):
    page = client.get(f"/runs/{runs['run-0']}")
    assert page.status_code == 200 and 'data-title="loss"' in page.text
    environment = client.get(f"/runs/{runs['run-0']}/environment")
    assert environment.status_code == 200
    ids = f"{runs['run-0']},{runs['run-1']}"
    compare = client.get("/compare", params={"ids": ids})
    assert compare.status_code == 200 and 'class="differs"' in compare.text


def test_a_damaged_run_file_shows_an_error_in_its_panel(client, runs, ws):
    assert client.get("/api/runs").json()["total"] == 3  # indexed before the damage
    run = Run.get(runs["run-1"], workspace=ws)
    (run.folder / "status.json").write_text("{not json")
    (run.folder / "environment.json").write_text("[1, 2")
    page = client.get(f"/runs/{run.id}")
    assert page.status_code == 200
    assert "Could not read status" in page.text and 'data-title="loss"' not in page.text
    data = client.get(f"/api/runs/{run.id}").json()
    assert "status" in data["errors"] and data["run"]["name"] == "run-1"
    assert data["params"] == {"General/lr": 0.01, "General/epochs": 4}
    panel = client.get(f"/runs/{run.id}/environment")
    assert panel.status_code == 200 and "Could not read the environment" in panel.text


def test_a_folder_that_is_no_workspace_is_refused(tmp_path: Path):
    from etude.workspace import WorkspaceError

    with pytest.raises(WorkspaceError, match="not an etude workspace"):
        make_client(tmp_path / "empty")


WAITING_JOB = """
import sys, time
from etude import Param, Task, experiment

class Sleep(Task):
    seconds: Param[int]

    def execute(self):
        time.sleep(self.seconds)

if __name__ == "__main__":
    with experiment(sys.argv[1], "slow"):
        Sleep.C(seconds=300).submit()
"""


def test_a_running_job_is_killed(ws, tmp_path, store_env):
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "slow.py"
    script.write_text(WAITING_JOB)
    process = subprocess.Popen([sys.executable, str(script), str(ws)], cwd=tmp_path,
                               env={**os.environ, **store_env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (ws / "experiments").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with make_client(ws) as client:
            def running() -> list:
                jobs = client.get("/api/jobs", params={"experiment": "slow"}).json()
                return [j for j in jobs if j["state"] == "running"]

            while not running():
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.1)
            folder = running()[0]["folder"]
            refused = client.post("/api/job/kill", json={"folder": folder})
            assert refused.status_code == 403  # no change header
            reply = client.post("/api/job/kill", json={"folder": folder},
                                headers={"X-Etude": "1"}).json()
            assert reply["stopped"] and reply["state"] == "error", reply
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_an_artifact_links_to_the_run_that_produced_it(client, runs, ws):
    record = Run.get(runs["run-1"], workspace=ws).artifacts["scores"]
    found = client.get(f"/api/artifacts/{record.sha256}/producer").json()
    assert found == {"run": runs["run-1"], "name": "scores", "side": "artifact"}
    page = client.get(f"/runs/{runs['run-1']}")
    assert f'href="/artifacts/{record.sha256}"' in page.text
    redirect = client.get(f"/artifacts/{record.sha256}", follow_redirects=False)
    assert redirect.status_code == 303
    assert redirect.headers["location"] == f"/runs/{runs['run-1']}#outputs"
    assert client.get(f"/api/artifacts/{'0' * 64}/producer").status_code == 404
    assert client.get("/api/artifacts/nothex/producer").status_code == 404


def test_a_clone_links_to_its_parent(client, runs, ws):
    draft = Run.clone(runs["run-0"], workspace=ws)
    page = client.get(f"/runs/{draft.id}").text
    assert f'href="/runs/{runs["run-0"]}"' in page and "Cloned from" in page


def test_the_compare_page_has_parallel_coordinates(client, runs):
    ids = ",".join(runs[name] for name in ("run-0", "run-1", "run-2"))
    page = client.get("/compare", params={"ids": ids}).text
    assert 'id="parallel"' in page and "/static/vendor/echarts/echarts.min.js" in page
    assert "echarts" not in client.get("/runs").text  # loaded on the compare page only
