"""Which workspace a run goes to: `workspace=`, else `ETUDE_WORKSPACE`, else the settings'
`default_workspace`, else `./runs`."""

from __future__ import annotations

import os
from pathlib import Path

from ..workspace.settings import default_workspace, find_workspace

WORKSPACE_ENV = "ETUDE_WORKSPACE"
DEFAULT_FOLDER = "runs"


def resolve_workspace(workspace: str | os.PathLike[str] | None) -> Path:
    """The workspace folder (absolute); a settings id resolves to its path."""
    chosen = workspace if workspace is not None else os.environ.get(WORKSPACE_ENV)
    if chosen is None or chosen == "":
        chosen = default_workspace() or DEFAULT_FOLDER
    return find_workspace(chosen).path
