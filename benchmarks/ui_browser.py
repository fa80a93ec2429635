"""The web UI in a real browser, measured (not asserted): Debian's Chromium driven by
Playwright against a real `etude ui` process, as tests/web/test_browser.py does. Goals (issue
12): the runs table over 100,000 runs interactive under 1 s after load; a chart of 10 overlaid
series of 100,000 points each drawn under 500 ms.

Run by `python benchmarks/ui_bench.py --browser`. Each measure loads the page afresh (a new
browser context: nothing cached in the browser) `repeats` times; the first load also pays the
server's first read of the scalars file, later ones find it cached. Times come from the page's
own clock (`performance.now()`, 0 at the start of navigation), noted by a script that the
page runs before its own (MEASURE): the moment the table's first row is in the DOM and, a
frame later, painted and on top (what a click would hit); and the moment the chart's figure
says "drawn" (uPlot has drawn its canvas) and the next frame is painted.
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Any

# tests/web/browser.py: the same Chromium and `etude ui` process as the browser tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.web.browser import UiServer, launch

ROOT = Path(__file__).resolve().parent.parent
SERIES, SERIES_POINTS = 10, 100_000
GOALS_MS = {"runs_table_interactive": 1000, "chart_10x100k_drawn": 500}

MEASURE = """
window.__bench = {};
new MutationObserver(() => {
  const bench = window.__bench;
  const row = bench.row === undefined && document.querySelector("#runs-table .tabulator-row");
  if (row) {
    bench.row = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => {
      const box = row.getBoundingClientRect();
      const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
      bench.clickable = row.contains(hit);
      bench.interactive = performance.now();
    }));
  }
  const chart = bench.drawn === undefined &&
    document.querySelector("figure.chart[data-state='drawn']");
  if (chart) {
    bench.drawn = performance.now();
    bench.points = Number(chart.dataset.points);
    const request = performance.getEntriesByType("resource").find(
      (entry) => entry.name.includes("/chart?"));
    bench.request = request ? request.startTime : null;
    bench.response = request ? request.responseEnd : null;
    requestAnimationFrame(() => requestAnimationFrame(() => {
      bench.painted = performance.now();
    }));
  }
}).observe(document, { subtree: true, childList: true, attributes: true,
                       attributeFilter: ["data-state"] });
"""


def log_series_run(ws: Path, quiet: dict[str, Any]) -> str:
    """A run with SERIES series of SERIES_POINTS points under one title; its id."""
    from etude.tracking import Run

    run = Run.init(project="bench", name="overlaid", workspace=ws, **quiet)
    for i in range(SERIES_POINTS):
        for k in range(SERIES):
            run.logger.report_scalar("loss", f"series {k}", value=float((i * (k + 1)) % 977),
                                     iteration=i)
    run.close()
    return str(run.id)


def _load(browser: Any, url: str, done: str) -> dict[str, Any]:
    """Open `url` in a fresh context, wait for `done` (JS over window.__bench), return it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script(MEASURE)
        page.goto(url)
        page.wait_for_function(done, timeout=120_000)
        if errors:
            raise SystemExit(f"errors in the page {url}: {errors}")
        found: dict[str, Any] = page.evaluate("window.__bench")
        found["total"] = page.evaluate(
            "document.getElementById('run-count')?.dataset.total ?? null")
        return found
    finally:
        context.close()


def _summary(values: list[float]) -> dict[str, float]:
    return {"first_ms": round(values[0], 1),
            "median_ms": round(statistics.median(values[1:] or values), 1),
            "best_ms": round(min(values), 1)}


def measure(ws: Path, run_id: str, runs: int, repeats: int) -> dict[str, Any]:
    """The browser's numbers over the workspace `ws` (holding `runs` runs and the run
    `run_id` of log_series_run)."""
    from playwright.sync_api import sync_playwright

    env = {k: v for k, v in os.environ.items() if not k.startswith("ETUDE_")}
    env["XDG_CONFIG_HOME"] = str(ws.parent / "config")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    server = UiServer(ws, env)
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            table, chart = [], []
            for _ in range(repeats):
                print("runs table in Chromium...", file=sys.stderr)
                table.append(_load(browser, f"{server.url}runs",
                                   "() => window.__bench.interactive !== undefined"))
            for _ in range(repeats):
                print("chart in Chromium...", file=sys.stderr)
                chart.append(_load(browser, f"{server.url}runs/{run_id}",
                                   "() => window.__bench.painted !== undefined"))
            browser.close()
    finally:
        server.stop()
    if not all(load["clickable"] for load in table):
        raise SystemExit("the runs table's first row was covered when it was painted")
    if any(load["points"] < SERIES * 1000 for load in chart):
        raise SystemExit(f"the chart drew {chart[0]['points']} points: not the series")
    return {
        "runs_table": {**_summary([load["interactive"] for load in table]),
                       "rows_in_dom_ms": round(table[-1]["row"], 1), "runs": runs,
                       "shown_total": table[-1]["total"]},
        "chart": {**_summary([load["painted"] - load["request"] for load in chart]),
                  "from_navigation_ms": round(chart[-1]["painted"], 1),
                  "server_reply_ms": round(chart[-1]["response"] - chart[-1]["request"], 1),
                  "points_drawn": chart[-1]["points"],
                  "points": SERIES * SERIES_POINTS},
        "goals_ms": GOALS_MS,
    }
