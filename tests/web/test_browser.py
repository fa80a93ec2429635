"""The UI in a real headless Chromium (Playwright driving Debian's chromium) against a real
`etude ui` process: the runs table with the grammar and a metric sort, a run's chart drawn,
compare with its parallel coordinates, a running run and a running job changing on screen
without a reload, bulk and per-run actions changing runs' states, and an experiment's
dependency graph with a failed job retried.

Each page's screenshot is kept under the test's tmp folder; with ETUDE_SCREENSHOTS=FOLDER
they are copied there too (docs/images/ for the docs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser import BrowserUnavailable, UiServer, chromium, launch
from .conftest import record_runs

LIVE_RUN = """
import sys, time
from pathlib import Path
from etude.tracking import Run

flag = Path(sys.argv[2])
with Run.init(project="live", name="watched", workspace=sys.argv[1],
              auto_connect_arg_parser=False, auto_connect_frameworks=False,
              auto_resource_monitoring=False) as run:
    print("step one", flush=True)
    run.logger.report_scalar("loss", "train", 1.0, 0)
    while not flag.exists():
        time.sleep(0.05)
    print("step two", flush=True)
    run.logger.report_scalar("loss", "train", 0.5, 1)
"""

LIVE_JOB = """
import sys, time
from pathlib import Path
from etude import Param, Task, experiment

class Wait(Task):
    flag: Param[str]

    def execute(self):
        while not Path(self.flag).exists():
            time.sleep(0.05)

if __name__ == "__main__":
    with experiment(sys.argv[1], "live"):
        Wait.C(flag=sys.argv[2]).submit()
"""


@pytest.fixture(scope="session")
def session_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An environment of its own for the session's workspace, server and scripts."""
    config = tmp_path_factory.mktemp("config")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ETUDE_STORE", "ETUDE_WORKSPACE", "ETUDE_JOB_FOLDER", "ETUDE_UI_TOKEN")}
    env["XDG_CONFIG_HOME"] = str(config)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("ETUDE_STORE", "ETUDE_WORKSPACE", "ETUDE_JOB_FOLDER"):
            patch.delenv(name, raising=False)
        patch.setenv("XDG_CONFIG_HOME", str(config))
        yield env


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory,
             session_env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    from etude.tracking.query import close_indexes

    ws = tmp_path_factory.mktemp("browser") / "ws"
    ids = record_runs(ws)
    close_indexes()
    return ws, ids


@pytest.fixture(scope="session")
def server(recorded: tuple[Path, dict[str, str]], session_env: dict[str, str]
           ) -> Iterator[UiServer]:
    ui = UiServer(recorded[0], session_env)
    yield ui
    ui.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    try:
        chromium()
    except BrowserUnavailable as error:
        pytest.fail(f"BROWSER UNAVAILABLE: {error}", pytrace=False)
    with sync_playwright() as playwright:
        instance = launch(playwright)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # A bad filter is answered 400 and a refused state change 409 on purpose (the page shows
    # them); anything else is an error.
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" and not any(
        f"status of {code}" in m.text for code in (400, 409)) else None)
    yield tab
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def shoot(tmp_path: Path) -> Callable[..., None]:
    def take(page: Any, name: str, full_page: bool = True) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        target = os.environ.get("ETUDE_SCREENSHOTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(target) / path.name)

    return take


def _names(page: Any) -> list[str]:
    return page.locator("#runs-table .tabulator-row .tabulator-cell[tabulator-field=name]") \
        .all_inner_texts()


def _wait_loaded(page: Any, before: str | None) -> None:
    page.wait_for_function(
        "before => { const t = document.getElementById('runs-table');"
        " return t.dataset.loaded && t.dataset.loaded !== before; }", arg=before)


def test_runs_table_filters_with_the_grammar_and_sorts_by_a_metric(server, page, shoot):
    page.goto(f"{server.url}runs?columns=params.lr,metrics.accuracy")
    page.wait_for_selector("#runs-table .tabulator-row")
    assert sorted(_names(page)) == ["run-0", "run-1", "run-2"]
    loaded = page.get_attribute("#runs-table", "data-loaded")
    page.fill("#where", "params.lr < 0.05")
    page.press("#where", "Enter")
    _wait_loaded(page, loaded)
    assert sorted(_names(page)) == ["run-1", "run-2"]
    assert page.get_attribute("#run-count", "data-total") == "2"

    loaded = page.get_attribute("#runs-table", "data-loaded")
    page.fill("#where", "params.lr < 0.05 and stat = done")
    page.press("#where", "Enter")
    page.wait_for_selector("#where-error:not([hidden])")
    error = page.inner_text("#where-error")
    assert "unknown field 'stat'" in error and "^" in error
    shoot(page, "runs-filter-error")

    page.fill("#where", "")
    page.press("#where", "Enter")
    _wait_loaded(page, loaded)
    page.wait_for_function("() => document.getElementById('where-error').hidden")
    loaded = page.get_attribute("#runs-table", "data-loaded")
    page.click(".tabulator-col[tabulator-field='metrics.accuracy'] .tabulator-col-title")
    _wait_loaded(page, loaded)
    assert "sort=metrics.accuracy" in page.url
    assert _names(page) == ["run-0", "run-1", "run-2"]  # accuracy 0.90, 0.91, 0.92
    shoot(page, "runs")


def _canvas_pixels(page: Any, selector: str) -> int:
    """How many pixels of the canvases under `selector` are drawn (not transparent)."""
    return int(page.evaluate(
        """sel => { let n = 0;
        for (const c of document.querySelectorAll(sel + ' canvas')) {
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; }
        return n; }""",
        selector))


def test_a_run_page_draws_its_chart(server, recorded, page, shoot):
    run_id = recorded[1]["run-0"]
    page.goto(f"{server.url}runs/{run_id}")
    chart = "figure.chart[data-title='loss']"
    page.wait_for_selector(f"{chart}[data-state='drawn']")
    assert _canvas_pixels(page, chart) > 500
    assert page.get_attribute(chart, "data-reduced") == "yes"
    page.wait_for_selector("#environment table.kv, #environment p")  # the htmx panel
    assert page.locator(".table-event table td").first.inner_text() == "1"
    shoot(page, "run")


def test_compare_highlights_differences_and_overlays_scalars(server, recorded, page, shoot):
    ids = ",".join(recorded[1][name] for name in ("run-0", "run-1", "run-2"))
    page.goto(f"{server.url}compare?ids={ids}")
    chart = "figure.chart[data-title='loss']"
    page.wait_for_selector(f"{chart}[data-state='drawn']")
    assert _canvas_pixels(page, chart) > 500
    legend = page.locator(f"{chart} .u-legend .u-series").all_inner_texts()
    assert len(legend) == 4  # x and one series per run
    differs = page.locator("#compare-params tr.differs td:first-child").all_inner_texts()
    assert "General/lr" in differs and "General/epochs" in differs
    page.wait_for_selector("#parallel[data-state='drawn']")
    assert page.get_attribute("#parallel", "data-axes") == "3"  # lr, epochs, the metric
    assert _canvas_pixels(page, "#parallel") > 500
    shoot(page, "compare")


def _wait(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _script(tmp_path: Path, source: str, *args: str, env: dict[str, str]) -> Any:
    script = tmp_path / "live.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_running_run_changes_on_screen(server, recorded, page, shoot, tmp_path,
                                         session_env):
    flag = tmp_path / "go"
    process = _script(tmp_path, LIVE_RUN, str(recorded[0]), str(flag), env=session_env)
    try:
        def running() -> str | None:
            rows = httpx.get(f"{server.url}api/runs", params={"project": "live"}).json()["rows"]
            return rows[0]["id"] if rows and rows[0]["state"] == "running" else None

        run_id = _wait(running, "the live run to be indexed as running")
        page.goto(f"{server.url}runs/{run_id}")
        page.wait_for_function(
            "() => document.getElementById('console').textContent.includes('step one')")
        assert page.inner_text("#run-state") == "running"
        shoot(page, "run-live")
        flag.touch()
        page.wait_for_function(
            "() => document.getElementById('console').textContent.includes('step two')",
            timeout=60_000)
        page.wait_for_function(
            "() => document.getElementById('run-state').textContent === 'completed'",
            timeout=60_000)
    finally:
        flag.touch()
        process.wait(timeout=60)


def test_a_running_job_changes_state_on_screen(server, recorded, page, shoot, tmp_path,
                                               session_env):
    flag = tmp_path / "go"
    process = _script(tmp_path, LIVE_JOB, str(recorded[0]), str(flag), env=session_env)
    try:
        def running() -> bool:
            jobs = httpx.get(f"{server.url}api/jobs", params={"experiment": "live"}).json()
            return bool(jobs) and jobs[0]["state"] == "running"

        _wait(running, "the live job to run")
        page.goto(f"{server.url}experiments?name=live")
        state = "#jobs .job-state span"
        assert page.inner_text(state) == "running"
        assert page.is_visible("#jobs button.kill")
        page.wait_for_function("() => document.getElementById('live-status').dataset.updates")
        shoot(page, "experiments")
        flag.touch()
        page.wait_for_function(
            f"() => document.querySelector('{state}').textContent === 'done'", timeout=60_000)
        assert not page.is_visible("#jobs button.kill")
    finally:
        flag.touch()
        process.wait(timeout=60)


def _answer_dialogs(page: Any, text: str = "default") -> list[str]:
    """Accept every confirm and answer every prompt with `text`; returns their messages."""
    seen: list[str] = []

    def answer(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.accept(text) if dialog.type == "prompt" else dialog.accept()

    page.on("dialog", answer)
    return seen


@pytest.fixture
def own_server(tmp_path: Path, session_env: dict[str, str]) -> Iterator[tuple[UiServer, Path]]:
    """A workspace and an `etude ui` of this test's own (its runs change state)."""
    from etude.tracking.query import close_indexes

    ws = tmp_path / "ws"
    record_runs(ws, spike_at=50, points=100)
    close_indexes()
    ui = UiServer(ws, session_env)
    yield ui, ws
    ui.stop()


def _row_states(page: Any) -> list[str]:
    return page.locator("#runs-table .tabulator-row .tabulator-cell[tabulator-field=state]") \
        .all_inner_texts()


def test_runs_are_enqueued_in_bulk_and_a_run_page_offers_its_actions(own_server, page, shoot):
    from etude.tracking import Run
    from etude.tracking.query import close_indexes

    server, ws = own_server
    source = Run.get(project="vision/mnist", name="run-0", workspace=ws)
    close_indexes()
    seen = _answer_dialogs(page)

    page.goto(f"{server.url}runs/{source.id}")
    buttons = page.locator("#run-actions button").all_inner_texts()
    assert buttons == ["Clone", "Reset", "Publish"]
    page.click("#run-actions button[data-action=clone]")
    page.wait_for_url(lambda url: source.id not in url)
    page.wait_for_selector("#run-actions button[data-action=enqueue]")
    assert page.inner_text("#run-state") == "draft" and "Cloned from" in page.content()
    page.click("#run-actions button[data-action=enqueue]")
    page.wait_for_function(
        "() => document.getElementById('run-state').textContent === 'queued'")
    shoot(page, "run-actions", full_page=False)
    page.click("#run-actions button[data-action=dequeue]")
    page.wait_for_function(
        "() => document.getElementById('run-state').textContent === 'draft'")
    assert any("Clone this run" in message for message in seen)

    page.goto(f"{server.url}runs?where=state%20%3D%20draft")
    page.wait_for_selector("#runs-table .tabulator-row")
    assert _row_states(page) == ["draft"]
    page.click("#runs-table .tabulator-row .tabulator-cell:first-child input")
    loaded = page.get_attribute("#runs-table", "data-loaded")
    page.click("#enqueue-selected")
    _wait_loaded(page, loaded)
    page.wait_for_function(
        "() => document.getElementById('bulk-status').textContent.includes('1 run(s) changed')")
    page.fill("#where", "")
    page.press("#where", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#runs-table .tabulator-row')"
                           ".length === 4")
    assert sorted(_row_states(page)) == ["completed", "completed", "completed", "queued"]

    page.click("#runs-table .tabulator-row .tabulator-cell:first-child input >> nth=0")
    page.click("#enqueue-selected")
    page.wait_for_selector("#bulk-status.error")
    assert "cannot be enqueued" in page.inner_text("#bulk-status")
    shoot(page, "runs-bulk")


def test_a_clone_is_edited_then_enqueued_with_its_new_value(own_server, page, shoot):
    """Clone in the UI, a refused value shown under its input, the saved value shown, then
    enqueue: the store has the queued run with the edited value."""
    from etude.tracking import Run
    from etude.tracking.query import close_indexes

    server, ws = own_server
    source = Run.get(project="vision/mnist", name="run-0", workspace=ws)
    close_indexes()
    seen = _answer_dialogs(page)
    page.goto(f"{server.url}runs/{source.id}")
    page.click("#run-actions button[data-action=clone]")
    page.wait_for_url(lambda url: source.id not in url)
    draft = page.get_attribute("#run", "data-run")
    lr = "#params-form input[name='General/lr']"
    epochs = "#params-form input[name='General/epochs']"
    assert page.input_value(lr) == "0.1" and page.input_value(epochs) == "3"

    page.fill(epochs, "many")
    page.fill(lr, "0.05")
    page.click("#params-form button[type=submit]")
    error = page.locator("#params-form .field-error:visible")
    error.wait_for()
    assert "General/epochs: expected an int" in error.inner_text()
    assert page.locator("#params-status.error").count() == 1
    page.locator("#params").scroll_into_view_if_needed()
    shoot(page, "run-edit", full_page=False)
    page.fill(epochs, "4")
    page.click("#params-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('params-status').textContent"
                           " === 'saved 2 parameter(s)'")
    assert page.locator("#params-form .field-error:visible").count() == 0
    area = "form.configuration-form[data-name=net] textarea"
    page.fill(area, '{"layers": [5, 6]}')
    page.click("form.configuration-form[data-name=net] button[type=submit]")
    page.wait_for_function("() => document.querySelector('form.configuration-form"
                           "[data-name=net] .edit-status').textContent === 'saved'")

    # A new configuration object: a taken name and bad JSON are refused, then it is added.
    page.fill("#configuration-new-name", "net")
    page.click("#configuration-new button[type=submit]")
    page.locator("#configuration-new .field-error:visible").wait_for()
    assert "exists already" in page.inner_text("#configuration-new .field-error:visible")
    page.fill("#configuration-new-name", "optimizer")
    page.fill("#configuration-new-value", '{"name": "adam",')
    page.click("#configuration-new button[type=submit]")
    page.wait_for_function("() => document.querySelector('#configuration-new-value')"
                           ".parentElement.querySelector('.field-error').textContent"
                           ".includes('not JSON')")
    page.locator("#configuration-new").scroll_into_view_if_needed()
    shoot(page, "run-configuration-new", full_page=False)
    page.fill("#configuration-new-value", '{"name": "adam"}')
    page.click("#configuration-new button[type=submit]")
    optimizer = "form.configuration-form[data-name=optimizer] textarea"
    page.wait_for_selector(optimizer)  # the page drawn again, with it among the others
    page.wait_for_load_state()

    page.reload()  # the page drawn again shows the saved values
    assert page.input_value(lr) == "0.05" and page.input_value(epochs) == "4"
    assert json.loads(page.input_value(area)) == {"layers": [5, 6]}
    assert json.loads(page.input_value(optimizer)) == {"name": "adam"}
    # A new parameter and a removed one, saved together; the table is drawn again.
    page.fill("#param-new-name", "General/dropout")
    page.fill("#param-new-value", "0.25")
    page.check(".param-remove[data-name='General/epochs']")
    page.click("#params-form button[type=submit]")
    dropout = "#params-form input[name='General/dropout']"
    page.wait_for_selector(dropout)
    page.wait_for_load_state()  # the reloaded page's scripts are set up
    assert page.input_value(dropout) == "0.25" and page.locator(epochs).count() == 0
    page.fill(lr, "0.07")  # not saved: enqueueing asks, and the queued run goes without it
    page.click("#run-actions button[data-action=enqueue]")
    page.wait_for_function(
        "() => document.getElementById('run-state').textContent === 'queued'")
    assert page.locator("#params-form").count() == 0  # a queued run is not edited
    assert any("1 edit(s) are not saved" in message for message in seen)

    (queued,) = Run.query(where="state = queued", workspace=ws)
    assert queued.id == draft and queued.params["General/lr"] == 0.05
    assert "General/epochs" not in queued.params and queued.params["General/dropout"] == 0.25
    assert queued.configuration == {"net": {"layers": [5, 6]}, "optimizer": {"name": "adam"}}
    close_indexes()


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

if __name__ == "__main__":
    with experiment(sys.argv[1], "pipeline"):
        data = Prepare.C(size=3).submit()
        for seed in range(3):
            Learn.C(data=data, marker=sys.argv[2] + str(seed)).submit()
"""


def test_the_dependency_graph_is_drawn_and_a_failed_job_retried(own_server, page, shoot,
                                                               tmp_path, session_env):
    server, ws = own_server
    marker = tmp_path / "marker"
    (tmp_path / "marker1").touch()
    _script(tmp_path, PIPELINE, str(ws), str(marker), env=session_env).wait(timeout=120)
    seen = _answer_dialogs(page)
    page.goto(f"{server.url}experiments?name=pipeline")
    page.wait_for_selector("#job-graph[data-state='drawn']")
    assert page.get_attribute("#job-graph", "data-nodes") == "4"
    assert page.get_attribute("#job-graph", "data-edges") == "3"
    page.wait_for_function("() => document.getElementById('live-status').dataset.updates")
    assert _canvas_pixels(page, "#job-graph") > 500
    shoot(page, "job-graph")

    retry = "#jobs button.retry:visible"
    assert page.locator(retry).count() == 2  # two Learn jobs failed
    (tmp_path / "marker0").touch()
    (tmp_path / "marker2").touch()
    page.locator(retry).first.click()
    page.wait_for_function(
        "() => document.getElementById('live-status').textContent.includes('resubmitted')")
    page.wait_for_function("() => document.querySelectorAll('#jobs button.retry:not([hidden])')"
                           ".length === 1", timeout=90_000)
    assert any("Retry the failed job" in message for message in seen)
    page.wait_for_function("""() => document.getElementById('job-graph')._cyreg.cy
        .nodes('[state = "error"]').length === 1""")  # the graph follows the live states

    # A click on a node opens its job (the node's place on screen, from Cytoscape itself).
    box = page.locator("#job-graph").bounding_box()
    place = page.evaluate("""() => { const cy = document.getElementById('job-graph')._cyreg.cy;
        const node = cy.nodes().filter((n) => n.data('label').startsWith('Prepare'))[0];
        return [node.renderedPosition(), node.id()]; }""")
    page.mouse.click(box["x"] + place[0]["x"], box["y"] + place[0]["y"])
    page.wait_for_url(lambda url: "/job?folder=" in url)
    assert page.inner_text("h1").startswith("live.Prepare")
