"""The agent's execution of a clone of a job's run (front door 1): the job's configuration,
with the clone's edited `Config/...` parameters, submitted as a job of its own.

The agent starts `python -m etude.tracking.job_clone` for such a draft. This process takes
the draft as its run (`Run.init()` attaches to it, so its console shows the experiment's
progress), rebuilds the task from the source job's `params.json`, applies the edits (validated
as if set in code), and submits it in an experiment of the workspace: a new identifier, the
usual job folder, and the usual reuse rule (a configuration already done is not run again).
The draft records the job's folder and ends with the job's state.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..workspace import read_json
from ..workspace.layout import ETUDE_DIR
from .errors import RunStateError

CONFIG_SECTION = "Config"


def thaw(document: dict[str, Any]) -> Any:
    """The task of a job's serialized configuration, as a configuration made in code (not
    sealed, values validated when set) rather than the runtime copy a job process reads."""
    from ..config.serialize import load

    for entry in reversed(document.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    task, objects = load(document)
    for obj in objects:
        state = obj._etude
        state.runtime = state.sealed = False
        state.digest = state.job = None
    return task


def apply_edits(task: Any, edits: dict[str, Any]) -> list[str]:
    """Set each `PATH` (dotted, as the job's run shows its parameters) to its value; returns
    the changes made, as text. Raises ValueError naming a path that leads nowhere."""
    done = []
    for path, value in edits.items():
        parts = path.split(".")
        target = task
        for part in parts[:-1]:
            target = _child(target, part, path)
        old = _child(target, parts[-1], path)
        if old == value:
            continue
        if isinstance(target, dict):
            target[parts[-1]] = value
        elif isinstance(target, list):
            target[int(parts[-1])] = value
        else:
            setattr(target, parts[-1], value)
        done.append(f"{path}: {old!r} -> {value!r}")
    return done


def _child(target: Any, part: str, path: str) -> Any:
    try:
        if isinstance(target, dict):
            return target[part]
        if isinstance(target, list):
            return target[int(part)]
        return getattr(target, part)
    except (KeyError, IndexError, ValueError, AttributeError) as error:
        raise ValueError(f"parameter Config/{path}: {part!r} is not in the job's "
                         f"configuration ({error}).") from error


def main() -> int:
    import os

    from .live import RUN_FOLDER_ENV
    from .run import Run

    if not os.environ.get(RUN_FOLDER_ENV):
        raise RunStateError("python -m etude.tracking.job_clone is started by `etude agent` "
                            "for a clone of a job's run; it is not run by hand.")
    run = Run.init(auto_connect_arg_parser=False, auto_resource_monitoring=False,
                   auto_connect_frameworks=False)
    meta = run._read_meta()
    source = run.workspace / meta["source_job"]["folder"]
    params = read_json(source / ETUDE_DIR / "params.json")
    if not isinstance(params, dict) or "config" not in params:
        raise RunStateError(
            f"{source}: not a task's job folder (no params.json configuration). Clones of "
            "pydantic-infra jobs cannot be run by an agent yet: call the infra method with the "
            "new values instead.")
    task = thaw(params["config"])
    for change in apply_edits(task, meta.get("edited", {}).get(CONFIG_SECTION, {})):
        print(f"edited {change}")
    from ..scheduler.entry import experiment

    # The job joins the draft's project (the source job's experiment) when that is a valid
    # experiment name, so the clone's job is listed beside the job it was cloned from.
    project = run.project
    name = project if project and "/" not in project and not project.startswith(".") \
        else f"clone-{run.id[:12]}"
    try:
        with experiment(params.get("workspace") or run.workspace, name):
            task.submit()
    finally:
        _record_job(run, task)
    return 0


def _record_job(run: Any, task: Any) -> None:
    """Link the draft to the job it became (also when the job failed)."""
    try:
        folder = Path(task.jobpath)
    except Exception:  # not submitted: nothing to link
        return
    relative = folder.relative_to(run.workspace).as_posix() if folder.is_relative_to(
        run.workspace) else str(folder)
    print(f"ran as job {relative}")
    run._edit(lambda meta: meta.__setitem__("executed_job", relative))


if __name__ == "__main__":
    sys.exit(main())
