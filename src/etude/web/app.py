"""The ASGI application: the JSON API under `/api/`, the pages, the static files, and the
guard (token, Host check, change header, Content-Security-Policy) around all of them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.staticfiles import StaticFiles

from ..workspace import Workspace
from .jsonout import error
from .retry import Retries
from .security import Guard
from .source import Conflict, Forbidden, NotFound, Source

logger = logging.getLogger("etude.web")
HERE = Path(__file__).parent


def create_app(workspace: Workspace | str | Path, *, token: str | None = None,
               check_host: bool = True, refresh_interval: float = 1.0) -> Any:
    """The UI of `workspace` as an ASGI app. With `token`, every request must carry it;
    `check_host` refuses requests whose Host is not a loopback name (set it when serving on
    127.0.0.1 without a token). Raises WorkspaceError for a folder that is no workspace."""
    from . import api_jobs, api_runs, pages

    if not isinstance(workspace, Workspace):
        workspace = Workspace(workspace)
    source = Source(workspace, refresh_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        source.close()

    app = FastAPI(title="etude", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.source = source
    app.state.retries = Retries()
    app.include_router(api_runs.router)
    app.include_router(api_jobs.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _handle_errors(app)
    # Guard wraps everything (the static files too): it is the outermost layer.
    return Guard(app, token=token, check_host=check_host and token is None)


def _handle_errors(app: FastAPI) -> None:
    """Expected failures become a status and a one-line message (JSON for the API, a page
    otherwise), never a traceback or a blank page."""
    from ..store import FilterError
    from ..tracking.errors import ReportError, RunStateError
    from .run_edits import EditError

    def reply(request: Request, status: int, message: str, **extra: Any) -> Any:
        if request.url.path.startswith("/api/"):
            return error(status, message, **extra)
        from .pages import error_page

        return error_page(request, status, message)

    @app.exception_handler(FilterError)
    async def bad_filter(request: Request, exc: FilterError) -> Any:
        return reply(request, 400, exc.message, column=exc.column, problem=exc.problem,
                     hint=exc.hint)

    @app.exception_handler(EditError)
    async def bad_values(request: Request, exc: EditError) -> Any:
        return reply(request, 400, str(exc), problems=exc.problems)

    handled: list[tuple[type[Exception], int]] = [
        (NotFound, 404), (Forbidden, 403), (RunStateError, 409), (Conflict, 409),
        (ReportError, 400), (ValueError, 400), (KeyError, 404), (OSError, 500)]
    for kind, status in handled:
        def handler(request: Request, exc: Exception, status: int = status) -> Any:
            if status == 500:
                logger.warning("%s: %s", request.url.path, exc)
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return reply(request, status, f"{text}")

        app.add_exception_handler(kind, handler)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Any:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors())
        return reply(request, 400, f"bad request: {problems}")
