"""`/api/runs...` and `/api/compare`: the runs table, one run, its scalars, console, reported
files and outputs, tag/archive edits, and the comparison of 2 to 20 runs.

Endpoints are plain functions: FastAPI runs them in worker threads, so database and file
work never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import FileResponse, Response

from . import run_actions, run_data, run_edits
from .jsonout import JSONOut
from .scalars import chart_series
from .source import NotFound, Source

router = APIRouter(prefix="/api", default_response_class=JSONOut)
X_AXES = ("iteration", "time", "relative")
MAX_WIDTH = 10_000
MAX_COMPARED = 20


def source_of(request: Request) -> Source:
    return request.app.state.source


class TagEdit(BaseModel):
    add: list[str] = []
    remove: list[str] = []


class PropertiesEdit(BaseModel):
    properties: dict[str, Any]


class BulkEdit(TagEdit):
    ids: list[str]
    archive: bool | None = None
    action: str | None = None  # "enqueue" or "abort"
    queue: str = "default"


class RunAction(BaseModel):
    action: str
    queue: str = "default"


class ParametersEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    set: dict[str, Any] = {}
    remove: list[str] = []


class ConfigurationEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    value: Any


Strings = Annotated[list[str], Query()]


def run_filter(where: str | None, project: str | None, tags: list[str], states: list[str],
               search: str | None, archived: bool, types: list[str] | None = None) -> Any:
    from ..store.run_query import RunFilter

    return RunFilter(where=where or None, project=project or None, tags=tags, states=states,
                     types=types or [], search=search or None, include_archived=archived)


def _columns(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()][:100]


@router.get("/runs")
def list_runs(request: Request, where: str | None = None, project: str | None = None,
              tag: Strings = [], state: Strings = [], type: Strings = [],  # noqa: B006
              search: str | None = None,
              archived: bool = False, sort: str | None = None, limit: int = 50,
              offset: int = 0, columns: str | None = None) -> Any:
    """A page of runs: `where` is the filter grammar, `sort` a sort spec (`-metrics.acc`),
    `columns` extra values (params.KEY, metrics.TITLE.SERIES[.AGG], user.KEY)."""
    spec = run_filter(where, project, tag, state, search, archived, type)
    return run_data.runs_page(source_of(request), spec, sort, limit, offset, _columns(columns))


@router.get("/runs/fields")
def run_fields(request: Request) -> Any:
    """Field names for completion and the column chooser."""
    return run_data.known_fields(source_of(request))


@router.get("/projects")
def list_projects(request: Request) -> Any:
    return run_data.projects(source_of(request))


@router.get("/runs/{ref}")
def get_run(request: Request, ref: str) -> Any:
    source = source_of(request)
    return run_data.run_detail(source, source.run(ref))


@router.get("/runs/{ref}/environment")
def run_environment(request: Request, ref: str) -> Any:
    return source_of(request).run(ref).environment


@router.get("/runs/{ref}/console")
def run_console(request: Request, ref: str, part: int = 0, offset: int | None = None) -> Any:
    """Console text from byte `offset` of file `part` (default: the tail); `next` is where
    the next call for new text starts."""
    source = source_of(request)
    run = source.run(ref)
    chunk = run_data.console_chunk(source, run, part, offset)
    chunk["state"] = run.state
    return chunk


@router.get("/runs/{ref}/console/download")
def run_console_download(request: Request, ref: str, part: int = 0) -> Any:
    source = source_of(request)
    files = run_data.console_files(source.run(ref))
    if not 0 <= part < len(files) or not files[part].exists():
        raise NotFound(f"no console file {part}")
    return FileResponse(source.inside(files[part]), filename=files[part].name,
                        media_type="text/plain", content_disposition_type="attachment")


@router.get("/runs/{ref}/events")
def run_events(request: Request, ref: str, kind: str | None = None) -> Any:
    """Text, tables, plots, images, histograms and media reported by the run (files are
    fetched from /api/runs/{ref}/file?path=...)."""
    return source_of(request).run(ref).events(kind)


@router.get("/runs/{ref}/file")
def run_file(request: Request, ref: str, path: str) -> Any:
    """A file the run reported: images and JSON inline, anything else (HTML media too) as a
    download, so nothing the run wrote can run script in the UI's origin."""
    source = source_of(request)
    target = run_data.run_file(source, source.run(ref), path)
    kind = run_data.SAFE_INLINE.get(target.suffix.lower())
    if kind is None:
        return FileResponse(target, filename=target.name, content_disposition_type="attachment",
                            media_type="application/octet-stream")
    return FileResponse(target, media_type=kind)


@router.get("/runs/{ref}/outputs/{side}/{name}")
def run_output(request: Request, ref: str, side: str, name: str) -> Any:
    """An artifact (side `artifact`) or a model (`input`, `output`) as bytes."""
    source = source_of(request)
    run = source.run(ref)
    content, filename = run_data.artifact_download(
        source, run, run_data.output_record(run, side, name))
    if isinstance(content, bytes):
        return Response(content, media_type="application/zip", headers={
            "content-disposition": f"attachment; filename*=UTF-8''{_quote(filename)}"})
    return FileResponse(content, filename=filename, media_type="application/octet-stream",
                        content_disposition_type="attachment")


@router.get("/artifacts/{sha256}/producer")
def artifact_producer(request: Request, sha256: str) -> Any:
    """The run that first uploaded these bytes (an artifact or output model):
    {"run", "name", "side"}."""
    return run_data.artifact_producer(source_of(request), sha256)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


@router.get("/runs/{ref}/scalars")
def run_scalars(request: Request, ref: str) -> Any:
    """The run's scalar titles and series, with their summaries."""
    metrics = source_of(request).run(ref).metrics
    return [{"title": title, "series": [{"name": name, **summary}
                                        for name, summary in sorted(by_series.items())]}
            for title, by_series in sorted(metrics.items())]


@router.get("/runs/{ref}/chart")
def run_chart(request: Request, ref: str, title: str, width: int = 1000, x: str = "iteration",
              xmin: float | None = None, xmax: float | None = None,
              smooth: float = 0.0) -> Any:
    """The series of `title` for a chart `width` pixels wide over [xmin, xmax]: every point,
    or each pixel column's first, last, lowest and highest when there are more."""
    source = source_of(request)
    run = source.run(ref)
    # A response, not a dict: FastAPI would walk the points to re-encode them first.
    return JSONOut({"title": title, "x": x,
                    "series": _chart(source, run, title, width, x, xmin, xmax, smooth, "")})


def _chart(source: Source, run: Any, title: str, width: int, x: str, xmin: float | None,
           xmax: float | None, smooth: float, label: str) -> list[dict[str, Any]]:
    if x not in X_AXES:
        raise ValueError(f"x={x!r}: use one of {', '.join(X_AXES)}")
    if not 0 <= smooth < 1:
        raise ValueError(f"smooth={smooth}: give a weight from 0 (none) to 0.99")
    width = max(1, min(int(width), MAX_WIDTH))
    series = source.series(run, title)
    start = run.started if x == "relative" else None
    if x == "relative" and start is None:
        start = min((float(t[0]) for _, _, t in series.values() if len(t)), default=0.0)
    out = []
    for name, (iterations, values, times) in sorted(series.items()):
        xs = iterations if x == "iteration" else times if x == "time" else times - start
        data = chart_series(xs, values, width, xmin, xmax, smooth)
        data["name"] = f"{label}{name}"
        out.append(data)
    return out


# -- edits ------------------------------------------------------------------------------------
@router.post("/runs/{ref}/tags")
def edit_tags(request: Request, ref: str, edit: TagEdit) -> Any:
    """Add and remove tags: {"add": [...], "remove": [...]}."""
    return _edit(request, [ref], add=edit.add, remove=edit.remove)


@router.post("/runs/{ref}/properties")
def edit_properties(request: Request, ref: str, edit: PropertiesEdit) -> Any:
    """Set user properties: {"properties": {"key": value}}."""
    source = source_of(request)
    run = source.run(ref)
    run.set_user_properties(**edit.properties)
    source.invalidate()
    return {"id": run.id, "user_properties": run.user_properties}


@router.post("/runs/{ref}/parameters")
def edit_parameters(request: Request, ref: str, edit: ParametersEdit) -> Any:
    """Set, add or remove parameters of a draft: {"set": {"Section/key": value}, "remove":
    ["Section/key"]}; a text takes the type of the value it replaces (see run_edits).
    Answers {"id", "changed", "removed", "params", "texts"}; 400 with `problems` (per
    parameter) when a value or a removal is refused, nothing being changed; 409 with the
    reason when the run is not a draft."""
    return run_edits.set_parameters(source_of(request), ref, edit.set, edit.remove)


@router.post("/runs/{ref}/configuration")
def edit_configuration(request: Request, ref: str, edit: ConfigurationEdit) -> Any:
    """Replace a configuration object of a draft: {"name": "model", "value": {...} or its
    JSON text}. Answers {"id", "name", "configuration", "text"}; 400 for a bad value, 409
    with the reason when the run is not a draft."""
    return run_edits.set_configuration(source_of(request), ref, edit.name, edit.value)


@router.post("/runs/bulk")
def bulk_edit(request: Request, edit: BulkEdit) -> Any:
    """Tag, untag, archive or unarchive several runs: {"ids", "add", "remove", "archive"};
    or enqueue them on `queue` or abort them: {"ids", "action", "queue"}. Runs whose state
    refuses the action are listed in `errors` (status 409), the others are changed."""
    if edit.action is not None:
        done = run_actions.act_on_many(source_of(request), edit.ids, edit.action, edit.queue)
        if done["errors"]:
            text = "; ".join(e["error"] for e in done["errors"])
            return JSONOut({"error": text, **done}, status_code=409)
        return done
    return _edit(request, edit.ids, add=edit.add, remove=edit.remove, archive=edit.archive)


@router.post("/runs/{ref}/action")
def run_action(request: Request, ref: str, action: RunAction) -> Any:
    """Change the run's state: {"action": clone|enqueue|dequeue|abort|reset|publish,
    "queue": "default"}; answers {"id", "state", "actions"} (and "clone", the new draft's
    id), or 409 with the reason the run's state refuses."""
    return run_actions.act(source_of(request), ref, action.action, action.queue)


def _edit(request: Request, refs: list[str], *, add: list[str], remove: list[str],
          archive: bool | None = None) -> Any:
    source = source_of(request)
    changed = []
    for run in [source.run(ref) for ref in refs[:1000]]:
        if add:
            run.add_tags(*add)
        if remove:
            run.remove_tags(*remove)
        if archive is not None:
            run.archive(archive)
        changed.append({"id": run.id, "tags": run.tags, "archived": run.archived})
    source.invalidate()
    return {"changed": changed}


# -- compare ----------------------------------------------------------------------------------
def _compared(source: Source, ids: str) -> list[Any]:
    refs = [ref for ref in ids.split(",") if ref]
    if not 2 <= len(refs) <= MAX_COMPARED:
        raise ValueError(f"compare takes 2 to {MAX_COMPARED} run ids, got {len(refs)}")
    return [source.run(ref) for ref in refs]


@router.get("/compare")
def compare(request: Request, ids: str) -> Any:
    """Runs side by side: their overviews, every parameter (`differs` when the values are
    not all equal), the last value of every metric, and the titles of their scalars."""
    source = source_of(request)
    runs = _compared(source, ids)
    params = [run.params for run in runs]
    metrics = [run.metrics for run in runs]
    keys = sorted({key for p in params for key in p})
    series = sorted({(t, s) for m in metrics for t, by in m.items() for s in by})
    return {
        "runs": [run_data.run_overview(source, run) for run in runs],
        "params": [{"key": key, "values": [p.get(key) for p in params],
                    "differs": len({repr(p.get(key)) for p in params}) > 1} for key in keys],
        "metrics": [{"title": t, "series": s,
                     "values": [m.get(t, {}).get(s, {}).get("last") for m in metrics]}
                    for t, s in series],
        "titles": sorted({t for m in metrics for t in m}),
    }


@router.get("/compare/chart")
def compare_chart(request: Request, ids: str, title: str, width: int = 1000,
                  x: str = "iteration", xmin: float | None = None, xmax: float | None = None,
                  smooth: float = 0.0) -> Any:
    """The series of `title` of every compared run, overlaid (named `RUN/SERIES`)."""
    source = source_of(request)
    series: list[dict[str, Any]] = []
    for run in _compared(source, ids):
        label = f"{run.name} {run.id[:8]}/"
        series += _chart(source, run, title, width, x, xmin, xmax, smooth, label)
    return JSONOut({"title": title, "x": x, "series": series})  # as run_chart
