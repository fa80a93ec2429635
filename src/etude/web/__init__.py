"""etude's web UI: `etude ui` serves the experiments, jobs and runs of a workspace, and the
JSON API under `/api/` that its pages (and scripts) use. See docs/web-ui.md.

Needs the `web` extra (`pip install etude[web]`: FastAPI, uvicorn, Jinja2, numpy); nothing
here is imported by `import etude`.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The ASGI app (see `etude.web.app.create_app`)."""
    from .app import create_app as create

    return create(*args, **kwargs)


__all__ = ["create_app"]
