"""Changing runs' states from the UI's API (clone, enqueue, dequeue, abort, reset, publish,
and enqueue/abort in bulk), on SQLite and PostgreSQL: the tracking layer's state table
decides, and a refused change is a 409 with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from etude.tracking import Run

from .conftest import make_client

HEADERS = {"X-Etude": "1"}

RUNNING = """
import sys, time
from pathlib import Path
from etude.tracking import Run

with Run.init(project="live", name="long", workspace=sys.argv[1],
              auto_connect_arg_parser=False, auto_connect_frameworks=False,
              auto_resource_monitoring=False) as run:
    print("started", flush=True)
    while True:
        time.sleep(0.05)
"""


def act(client, ref: str, action: str, **extra):
    return client.post(f"/api/runs/{ref}/action", json={"action": action, **extra},
                       headers=HEADERS)


def test_a_clone_is_enqueued_dequeued_and_its_source_reset_and_published(client, runs, ws):
    source = runs["run-0"]
    page = client.get(f"/api/runs/{source}").json()
    assert page["run"]["actions"] == ["clone", "reset", "publish"]
    cloned = act(client, source, "clone").json()
    draft = cloned["clone"]
    assert cloned["id"] == source and Run.get(draft, workspace=ws).parent == source
    assert client.get(f"/api/runs/{draft}").json()["run"]["actions"] == ["clone", "enqueue"]
    queued = act(client, draft, "enqueue", queue="gpu").json()
    assert queued["state"] == "queued" and queued["actions"] == ["clone", "dequeue"]
    assert client.get("/api/runs", params={"where": "state = queued"}).json()["total"] == 1
    assert act(client, draft, "dequeue").json()["state"] == "draft"
    assert act(client, source, "reset").json()["state"] == "draft"
    assert act(client, runs["run-1"], "publish").json()["state"] == "published"


def test_a_change_the_state_refuses_is_409_with_the_reason(client, runs):
    refused = act(client, runs["run-0"], "enqueue")
    assert refused.status_code == 409
    assert "is completed: it cannot be enqueued" in refused.json()["error"]
    assert act(client, runs["run-0"], "fly").status_code == 400
    draft = act(client, runs["run-0"], "clone").json()["clone"]
    bad_queue = act(client, draft, "enqueue", queue="no spaces")
    assert bad_queue.status_code == 400 and "queue name" in bad_queue.json()["error"]
    no_header = client.post(f"/api/runs/{draft}/action", json={"action": "enqueue"})
    assert no_header.status_code == 403


def test_runs_are_enqueued_in_bulk_and_refusals_reported(client, runs):
    drafts = [act(client, runs[name], "clone").json()["clone"] for name in ("run-0", "run-1")]
    reply = client.post("/api/runs/bulk", json={"ids": drafts, "action": "enqueue"},
                        headers=HEADERS)
    assert reply.status_code == 200
    assert [c["state"] for c in reply.json()["changed"]] == ["queued", "queued"]
    mixed = client.post("/api/runs/bulk", json={
        "ids": [runs["run-2"], act(client, runs["run-2"], "clone").json()["clone"]],
        "action": "enqueue", "queue": "cpu"}, headers=HEADERS)
    assert mixed.status_code == 409
    data = mixed.json()
    assert [e["id"] for e in data["errors"]] == [runs["run-2"]]
    assert len(data["changed"]) == 1 and "cannot be enqueued" in data["error"]
    queued = client.get("/api/runs", params={"where": "state = queued"}).json()
    assert queued["total"] == 3


def test_running_runs_are_aborted_in_bulk(ws, tmp_path: Path, store_env):
    script = tmp_path / "long.py"
    script.write_text(RUNNING)
    process = subprocess.Popen([sys.executable, str(script), str(ws)], cwd=tmp_path,
                               env={**os.environ, **store_env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (ws / "runs").exists():
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        with make_client(ws) as client:
            def running() -> list:
                return client.get("/api/runs", params={"state": "running"}).json()["rows"]

            while not running():
                assert time.monotonic() < deadline, "the run is not indexed as running"
                time.sleep(0.1)
            run_id = running()[0]["id"]
            assert client.get(f"/api/runs/{run_id}").json()["run"]["actions"] == [
                "clone", "abort"]
            reply = client.post("/api/runs/bulk", json={"ids": [run_id], "action": "abort"},
                                headers=HEADERS)
            assert reply.status_code == 200, reply.text
            assert reply.json()["changed"][0]["state"] == "aborted"
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
