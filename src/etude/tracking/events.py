"""Reading what a run reported besides scalars, and its console."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workspace.run_folder import RunFolder

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger("etude.tracking")


def read_events(folder: RunFolder, kind: str | None = None) -> list[dict[str, Any]]:
    """The events of `events.jsonl` (of `kind` only, if given), oldest first; a damaged line
    (the process was killed while writing it) is skipped and logged."""
    try:
        data = folder.events.read_bytes()
    except FileNotFoundError:
        return []
    events = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError:
            logger.warning("%s: line %d is damaged; skipped", folder.events, number)
            continue
        if isinstance(event, dict) and (kind is None or event.get("kind") == kind):
            events.append(event)
    return events


def console_text(run: Run, tail_bytes: int | None = None) -> str:
    """The run's console: its console.log, or for the run of a job its `.out` and `.err`."""
    paths = [run._folder.console]
    job = run.job
    if job is not None and not paths[0].exists():
        folder = Path(job["folder"])
        name = job.get("name") or "job"
        paths = [folder / f"{name}.out", folder / f"{name}.err"]
    parts = []
    for path in paths:
        try:
            with open(path, "rb") as stream:
                if tail_bytes is not None:
                    size = stream.seek(0, 2)
                    stream.seek(max(0, size - tail_bytes))
                parts.append(stream.read().decode(errors="replace"))
        except FileNotFoundError:
            continue
    return "".join(parts)
