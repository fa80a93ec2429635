"""`/api/experiments...` and `/api/jobs...`: experiments, their jobs with live states
(server-sent events) and dependency graph, a job's folder files, and stopping or retrying a
job."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, StreamingResponse

from . import job_data, job_graph, retry
from .api_runs import source_of
from .jsonout import JSONOut, finite

router = APIRouter(prefix="/api", default_response_class=JSONOut)
#: Seconds between two looks at the jobs' states for a live stream.
STREAM_INTERVAL = 1.0


@router.get("/experiments")
def list_experiments(request: Request) -> Any:
    return job_data.experiments(source_of(request))


@router.get("/jobs")
def list_jobs(request: Request, experiment: str | None = None, state: str | None = None,
              task: str | None = None, tag: str | None = None, where: str | None = None,
              sort: str | None = None, limit: int = 5000) -> Any:
    """Jobs (of `experiment`, in `state`, of `task`, with `tag` NAME or NAME=VALUE, matching
    the grammar `where`), each with its run id."""
    filters = job_data.job_where(experiment, state, task, tag, where)
    return job_data.jobs(source_of(request), filters, sort, max(1, min(limit, 20000)))


@router.get("/jobs/graph")
def jobs_graph(request: Request, experiment: str) -> Any:
    """The dependency graph of `experiment`'s jobs: {"nodes": [{"folder", "id", "task",
    "state", "reason", "run", "outside"}], "edges": [{"source", "target"}], "truncated"};
    an edge goes from a job to one that has it in its configuration."""
    return job_graph.graph(source_of(request), experiment)


@router.get("/jobs/stream")
async def stream_jobs(request: Request, experiment: str | None = None,
                      state: str | None = None, task: str | None = None,
                      tag: str | None = None, where: str | None = None) -> StreamingResponse:
    """Server-sent events: `states` with every job's {folder: [state, reason]} first, then
    `changes` with the jobs whose state changed (and `gone` for removed ones), about once a
    second."""
    source = source_of(request)
    filters = job_data.job_where(experiment, state, task, tag, where)

    async def events() -> AsyncIterator[bytes]:
        last: dict[str, Any] = {}
        first = True
        while not await request.is_disconnected():
            now = await run_in_threadpool(job_data.states, source, filters)
            changed = {k: v for k, v in now.items() if last.get(k) != v}
            gone = [k for k in last if k not in now]
            if first or changed or gone:
                kind = "states" if first else "changes"
                data = json.dumps({"jobs": changed, "gone": gone})
                yield f"event: {kind}\ndata: {data}\n\n".encode()
            else:
                yield b": still here\n\n"
            last, first = now, False
            await asyncio.sleep(STREAM_INTERVAL)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"x-accel-buffering": "no"})


@router.get("/job")
def get_job(request: Request, folder: str) -> Any:
    """One job by its folder (relative to the workspace): row, parameters, run, files, and
    the jobs it depends on (`dependencies`)."""
    source = source_of(request)
    return {**job_data.job(source, folder),
            "dependencies": job_graph.depends_on(source, folder)}


@router.get("/job/file")
def job_file(request: Request, folder: str, path: str, download: bool = False) -> Any:
    """A file of the job's folder: as text (JSON: text, truncated, binary) or, with
    `download`, its bytes."""
    target = job_data.job_file(source_of(request), folder, path)
    if download:
        return FileResponse(target, filename=target.name, media_type="application/octet-stream",
                            content_disposition_type="attachment")
    return job_data.read_text(target)


class KillRequest(BaseModel):
    folder: str


@router.post("/job/kill")
def kill_job(request: Request, kill: KillRequest) -> Any:
    """Stop a running job, {"folder": ...} (SIGTERM to its process group, or scancel)."""
    return job_data.kill(source_of(request), kill.folder)


class RetryRequest(BaseModel):
    folder: str


@router.post("/job/retry")
def retry_job(request: Request, body: RetryRequest) -> Any:
    """Submit a failed task job's configuration again, in its experiment, from a process of
    its own: {"started", "pid", "log", "message"}; 409 for an infra job or a job that has not
    failed."""
    retries: retry.Retries = request.app.state.retries
    return retries.start(source_of(request), body.folder)


@router.get("/runs/{ref}/stream")
async def stream_run(request: Request, ref: str, part: int = 0,
                     offset: int | None = None) -> StreamingResponse:
    """Server-sent events of a run: `update` with its state and the console text added since
    `offset` (the tail first), about once a second; `end` once the run has ended and its
    console is read."""
    from . import run_data

    source = source_of(request)
    await run_in_threadpool(source.run, ref)  # NotFound before the stream starts

    def look(at: int | None) -> dict[str, Any]:
        run = source.run(ref)
        chunk = run_data.console_chunk(source, run, part, at)
        return {"state": run.state, "reason": run._row.reason, "ended": run._row.ended,
                "metrics": run._row.modified, **chunk}

    async def events() -> AsyncIterator[bytes]:
        at = offset
        while not await request.is_disconnected():
            data = await run_in_threadpool(look, at)
            at = data["next"]
            yield f"event: update\ndata: {json.dumps(finite(data))}\n\n".encode()
            if data["state"] not in ("running", "queued") and data["next"] >= data["size"]:
                yield b"event: end\ndata: {}\n\n"
                return
            await asyncio.sleep(STREAM_INTERVAL)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"x-accel-buffering": "no"})
