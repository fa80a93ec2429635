"""The HTML pages: rendered on the server from the same functions as the API (a page and a
script see the same data), with Jinja2 escaping every value. What must be live (charts,
the runs table, job states, the console) is done by the small scripts in `static/js/`.

A panel whose files are damaged shows its error; the rest of the page is still drawn.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from . import job_data, run_data, run_edits
from .api_runs import _compared, source_of

router = APIRouter(default_response_class=HTMLResponse)
HERE = Path(__file__).parent
STATES = ("running", "waiting", "done", "error", "unscheduled")
_environment: Any = None


def templates() -> Any:
    """The Jinja2 environment (autoescaping every template), made once."""
    global _environment
    if _environment is None:
        import jinja2

        _environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True, trim_blocks=True, lstrip_blocks=True)
        _environment.filters.update(when=when, duration=duration, value=value_text,
                                    size=size_text, tojson_text=json_text,
                                    edit_text=run_edits.edit_text, kind=run_edits.kind_of,
                                    configuration_text=run_edits.configuration_text,
                                    is_file_configuration=run_edits.is_file_configuration)
    return _environment


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    source = source_of(request)
    page = templates().get_template(name).render(
        request=request, workspace=str(source.root), **context)
    return HTMLResponse(page, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)


# -- filters --------------------------------------------------------------------------------------
def when(value: float | None) -> str:
    if value is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def value_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def size_text(size: int | None) -> str:
    if size is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, allow_nan=True)


# -- pages ----------------------------------------------------------------------------------------
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/experiments", status_code=303)


@router.get("/experiments")
def experiments_page(request: Request, name: str | None = None, state: str | None = None,
                     task: str | None = None, tag: str | None = None) -> HTMLResponse:
    source = source_of(request)
    found = job_data.experiments(source)
    if name is None and found:
        name = max(found, key=lambda e: e["started"] or 0)["name"]
    jobs: list[dict[str, Any]] = []
    problem = None
    if name is not None:
        try:
            jobs = job_data.jobs(source, job_data.job_where(name, state, task, tag, None))
        except ValueError as exc:
            problem = str(exc)
    return render(request, "experiments.html", experiments=found, selected=name, jobs=jobs,
                  filters={"state": state or "", "task": task or "", "tag": tag or ""},
                  states=STATES, problem=problem,
                  stream=_query(experiment=name, state=state, task=task, tag=tag))


def _query(**values: str | None) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in values.items() if v})


@router.get("/runs")
def runs_page(request: Request) -> HTMLResponse:
    source = source_of(request)
    return render(request, "runs.html", projects=_tree(run_data.projects(source)))


def _tree(projects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Projects with their parents ("a/b" under "a"), depth-first, with counts that include
    sub-projects."""
    totals: dict[str, int] = {}
    for item in projects:
        parts = item["project"].split("/")
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            totals[key] = totals.get(key, 0) + item["count"]
    return [{"project": key, "name": key.rsplit("/", 1)[-1], "depth": key.count("/"),
             "count": totals[key]} for key in sorted(totals)]


@router.get("/runs/{ref}")
def run_page(request: Request, ref: str) -> HTMLResponse:
    source = source_of(request)
    run = source.run(ref)
    detail = run_data.run_detail(source, run)
    scalars, errors = run_data.sections({"scalars": lambda: sorted(run.metrics)})
    events, event_errors = run_data.sections({"events": lambda: _events(run)})
    detail["errors"].update(errors)
    detail["errors"].update(event_errors)
    return render(request, "run.html", run=run, detail=detail, titles=scalars["scalars"] or [],
                  events=events["events"] or {}, console=run_data.console_files(run))


def _events(run: Any) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in run.events():
        grouped.setdefault(str(event.get("kind")), []).append(event)
    for kind in ("image", "media"):  # debug samples: the last ones of each title/series
        if kind in grouped:
            grouped[kind] = grouped[kind][-60:]
    return grouped


@router.get("/runs/{ref}/environment")
def run_environment_panel(request: Request, ref: str) -> HTMLResponse:
    """The environment panel (loaded by htmx when opened: the diff and packages are long)."""
    source = source_of(request)
    values, errors = run_data.sections({"environment": lambda: source.run(ref).environment})
    return render(request, "environment.html", environment=values["environment"] or {},
                  errors=errors)


@router.get("/artifacts/{sha256}")
def artifact_page(request: Request, sha256: str) -> RedirectResponse:
    """The page of the run that produced an artifact or model (stored by content)."""
    found = run_data.artifact_producer(source_of(request), sha256)
    return RedirectResponse(f"/runs/{found['run']}#outputs", status_code=303)


@router.get("/job")
def job_page(request: Request, folder: str) -> HTMLResponse:
    from .job_graph import depends_on

    source = source_of(request)
    return render(request, "job.html", job=job_data.job(source, folder),
                  dependencies=depends_on(source, folder))


@router.get("/job/file")
def job_file_page(request: Request, folder: str, path: str) -> HTMLResponse:
    source = source_of(request)
    target = job_data.job_file(source, folder, path)
    return render(request, "file.html", folder=folder, path=path,
                  file=job_data.read_text(target))


@router.get("/compare")
def compare_page(request: Request, ids: str = Query(default="")) -> HTMLResponse:
    from .api_runs import compare

    if not ids:
        return render(request, "compare.html", data=None, ids="")
    _compared(source_of(request), ids)  # a bad list is reported before anything is read
    return render(request, "compare.html", data=compare(request, ids), ids=ids)
