"""What keeps the UI safe on a shared machine: the token, the Host check, the change
header, the Content-Security-Policy, escaping, and files served only from the workspace."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from etude.tracking import Run

from .conftest import QUIET, make_client, run_experiment

TOKEN = "s3cret-token-for-the-tests-0123"


@pytest.fixture
def store_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Security does not depend on the database: these tests use SQLite only."""
    monkeypatch.delenv("ETUDE_STORE", raising=False)
    return {}


def test_with_a_token_every_request_must_carry_it(ws, runs):
    with make_client(ws, token=TOKEN) as client:
        api = client.get("/api/runs")
        assert api.status_code == 401 and "token" in api.json()["error"]
        page = client.get("/runs")
        assert page.status_code == 401 and 'action="/login"' in page.text
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code \
            == 401
        ok = client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["total"] == 3


def test_the_token_link_sets_an_httponly_samesite_cookie(ws, runs):
    with make_client(ws, token=TOKEN) as client:
        reply = client.get(f"/runs?token={TOKEN}&where=x", follow_redirects=False)
        assert reply.status_code == 303
        assert reply.headers["location"] == "/runs?where=x"  # the token leaves the URL
        cookie = reply.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert client.get("/api/runs").status_code == 200  # the cookie is sent from now on
        assert client.get("/runs?token=wrong", follow_redirects=False).status_code == 401


def test_the_login_form_takes_the_token(ws, runs):
    with make_client(ws, token=TOKEN) as client:
        refused = client.post("/login", data={"token": "nope"}, follow_redirects=False)
        assert refused.status_code == 401
        reply = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert reply.status_code == 303 and "HttpOnly" in reply.headers["set-cookie"]
        assert client.get("/api/runs").status_code == 200


def test_without_a_token_only_loopback_hosts_are_answered(ws, runs):
    with make_client(ws) as client:
        assert client.get("/api/runs").status_code == 200
        rebound = client.get("/api/runs", headers={"Host": "attacker.example:8000"})
        assert rebound.status_code == 421
        assert client.get("/api/runs", headers={"Host": "localhost:8000"}).status_code == 200
        assert client.get("/api/runs", headers={"Host": "[::1]:8000"}).status_code == 200


def test_a_change_needs_the_change_header(client, runs):
    reply = client.post(f"/api/runs/{runs['run-0']}/tags", json={"add": ["x"]})
    assert reply.status_code == 403 and "X-Etude" in reply.json()["error"]
    assert client.get("/api/runs", params={"where": "tags has x"}).json()["total"] == 0


@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/api/runs/{id}/action", {"action": "clone"}, id="action"),
    pytest.param("/api/runs/bulk", {"ids": ["{id}"], "action": "abort"}, id="bulk-action"),
    pytest.param("/api/job/retry", {"folder": "jobs/x/y"}, id="retry"),
    pytest.param("/api/runs/{id}/parameters", {"set": {"General/lr": "1"}}, id="parameters"),
    pytest.param("/api/runs/{id}/configuration", {"name": "net", "value": "[]"},
                 id="configuration"),
])
def test_state_changes_need_the_change_header(client, runs, path, body):
    run_id = runs["run-0"]
    body = {k: ([run_id] if v == ["{id}"] else v) for k, v in body.items()}
    reply = client.post(path.replace("{id}", run_id), json=body)
    assert reply.status_code == 403 and "X-Etude" in reply.json()["error"]
    assert client.get("/api/runs").json()["total"] == 3  # no clone was made


@pytest.mark.parametrize("path", ["/runs", "/experiments", "/api/runs",
                                  "/static/etude.css", "/nowhere"])
def test_every_response_forbids_inline_scripts(client, path):
    policy = client.get(path).headers["content-security-policy"]
    scripts = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
    assert scripts.split() == ["script-src", "'self'"]
    assert "frame-ancestors 'none'" in policy


def test_pages_hold_no_inline_script(client, runs):
    ids = f"{runs['run-0']},{runs['run-1']}"
    for path in ["/runs", "/experiments", f"/runs/{runs['run-0']}", f"/compare?ids={ids}"]:
        html = client.get(path).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert 'src="/static/' in tag, f"{path}: inline script {tag}"
        assert not re.search(r"<script\b[^>]*>[^<]", html), path
        assert not re.search(r"\son[a-z]+\s*=", html), f"{path}: an inline event handler"


def test_everything_a_run_records_is_escaped(ws, store_env):
    evil = "<script>alert(1)</script>"
    with Run.init(project="p", name=evil, tags=["<b>t</b>"], workspace=ws, **QUIET) as run:
        run.connect({"<img src=x>": evil})
        run.set_user_properties(note=evil)
        run.logger.report_text(evil)
    with make_client(ws) as client:
        html = client.get(f"/runs/{run.id}").text
        assert evil not in html and "<b>t</b>" not in html and "<img src=x>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        listed = client.get("/api/runs").json()["rows"][0]
        assert listed["name"] == evil  # JSON carries the text; the pages escape it


def test_job_files_stay_inside_the_job_folder(ws, tmp_path, store_env):
    run_experiment(ws, tmp_path, store_env)
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    with make_client(ws) as client:
        folder = client.get("/api/jobs").json()[0]["folder"]
        job_path = ws / folder
        (job_path / "link").symlink_to(outside)
        (job_path / "up").symlink_to(ws)
        for path in ["../../../../secret.txt", "/etc/passwd", "link", "up/jobs", "a/../../x",
                     ".etude/../../x"]:
            reply = client.get("/api/job/file", params={"folder": folder, "path": path})
            assert reply.status_code == 403, path
        not_a_job = client.get("/api/job/file", params={"folder": "..", "path": "secret.txt"})
        assert not_a_job.status_code == 404
        listing = client.get("/api/job", params={"folder": folder}).json()["files"]
        assert "link" not in [f["path"] for f in listing]


def test_run_files_are_served_from_files_only_and_html_is_never_inline(ws, store_env,
                                                                       tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<script>alert(1)</script>")
    with Run.init(project="p", name="media", workspace=ws, **QUIET) as run:
        run.logger.report_media("m", "s", 0, local_path=str(page))
    (run.folder / "files" / "escape").symlink_to(tmp_path)
    with make_client(ws) as client:
        [event] = client.get(f"/api/runs/{run.id}/events").json()
        reply = client.get(f"/api/runs/{run.id}/file", params={"path": event["file"]})
        assert reply.headers["content-disposition"].startswith("attachment")
        assert reply.headers["content-type"] == "application/octet-stream"
        for path in ["run.json", "files/../run.json", "files/escape/page.html"]:
            refused = client.get(f"/api/runs/{run.id}/file", params={"path": path})
            assert refused.status_code == 403, path


def _start_ui(ws: Path, *options: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "etude.cli", "-w", str(ws), "ui", "--port", "0", *options],
        stderr=subprocess.PIPE, text=True, env={**os.environ})
    assert process.stderr is not None
    first = process.stderr.readline()
    return process, first


def test_etude_ui_with_token_prints_it_once_and_requires_it(ws, runs):
    import httpx

    process, first = _start_ui(ws, "--token")
    try:
        match = re.search(r"(http://\S+/)\?token=(\S+)", first)
        assert match, first
        url, token = match.groups()
        deadline = time.monotonic() + 30
        while True:
            try:
                refused = httpx.get(f"{url}api/runs", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        assert refused.status_code == 401
        ok = httpx.get(f"{url}api/runs", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["total"] == 3
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_another_host_gets_a_token_from_the_settings(monkeypatch):
    from etude.web.server import choose_token

    assert choose_token("127.0.0.1", wanted=False) is None
    assert len(choose_token("0.0.0.0", wanted=False) or "") >= 24
    monkeypatch.setenv("ETUDE_UI_TOKEN", TOKEN)
    assert choose_token("0.0.0.0", wanted=False) == TOKEN
    assert choose_token("::1", wanted=True) == TOKEN
