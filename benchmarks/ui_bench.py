"""The web UI's API, measured (not asserted): the first page of the runs table over 100,000
runs with a filter and a metric sort, and a 1,000,000-point series delivered for a 1,000-pixel
chart. Goals (SPEC 8, issue 12): under 200 ms and under 150 ms. With --browser, also the
issue's numbers in a real Chromium (see ui_browser.py): the runs table over the same runs
interactive under 1 s, and a chart of 10 overlaid series of 100,000 points drawn under 500 ms.

    python benchmarks/ui_bench.py [--runs 100000] [--points 1000000] [--repeats 5] [--browser]

The runs are written straight into the index of a temporary workspace (as
tracking_cases.py's `populate`); the series is logged by a real run. Requests go through the
ASGI app in this process (Starlette's test client), so the times are the server's, without a
network. Results on stdout (JSON), progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracking_cases import QUIET, WHERE, Etude
from ui_browser import SERIES, SERIES_POINTS, log_series_run, measure


def _client(ws: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from etude.web import create_app

    return TestClient(create_app(ws), base_url="http://127.0.0.1")


def _timed(client: Any, path: str, params: dict[str, Any], repeats: int) -> dict[str, Any]:
    times = []
    for _ in range(repeats):
        begun = time.perf_counter()
        reply = client.get(path, params=params)
        times.append(time.perf_counter() - begun)
        if reply.status_code != 200:
            raise SystemExit(f"{path}: {reply.status_code} {reply.text[:300]}")
    return {"first_ms": round(times[0] * 1000, 1), "median_ms": round(
        statistics.median(times[1:] or times) * 1000, 1), "reply": reply.json()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--browser", action="store_true",
                        help="also load the runs table and a chart in Chromium")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        ws = Path(folder) / "runs"
        overlaid = None
        if args.browser:  # before the index is filled: a run folder listed later empties it
            print(f"logging {SERIES} series of {SERIES_POINTS} points...", file=sys.stderr)
            overlaid = log_series_run(ws, QUIET)
        print(f"writing {args.runs} runs into the index...", file=sys.stderr)
        Etude(ws).populate(args.runs)
        with _client(ws) as client:
            page = _timed(client, "/api/runs", {"where": WHERE, "sort": "-metrics.accuracy",
                                                "limit": 50, "columns": "params.lr"},
                          args.repeats)
            results["runs_page"] = {k: v for k, v in page.items() if k != "reply"}
            results["runs_page"]["matched"] = page["reply"]["total"]
        if overlaid is not None:  # before another run is logged (see above)
            results["browser"] = measure(ws, overlaid, args.runs, args.repeats)
        from etude.tracking import Run

        print(f"logging {args.points} points...", file=sys.stderr)
        run = Run.init(project="bench", name="points", workspace=ws, **QUIET)
        for i in range(args.points):
            run.logger.report_scalar("loss", "train", value=float(i % 977), iteration=i)
        run.close()
        with _client(ws) as client:
            client.get("/api/projects")  # the index ingests the new run (not timed)
            chart = _timed(client, f"/api/runs/{run.id}/chart",
                           {"title": "loss", "width": 1000}, args.repeats)
            [series] = chart["reply"]["series"]
            results["chart_1000px"] = {"first_ms": chart["first_ms"],
                                       "median_ms": chart["median_ms"],
                                       "points_sent": len(series["x"]),
                                       "points": series["points"]}
    results["goals_ms"] = {"runs_page": 200, "chart_1000px": 150}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
