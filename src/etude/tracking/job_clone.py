"""The agent's execution of a clone of a job's run: the job's configuration, with the clone's
edited `Config/...` parameters, submitted as a job of its own.

The agent starts `python -m etude.tracking.job_clone` for such a draft. This process takes
the draft as its run (`Run.init()` attaches to it, so its console shows the job's progress)
and rebuilds what the source job computed, with the edits (validated as if set in code):

- a task's job (front door 1): the task from the job's `params.json`, submitted in an
  experiment of the workspace;
- an infra method's job (front door 2): the object from the job's payload (`job.pkl`; the
  user's code is loaded here as in a job process), whose method is called as the original
  call did (see `etude.infra.rebuild`).

Either way: a new identifier, the usual job folder, and the usual reuse rule (a configuration
already done is not run again). The draft records the job's folder (`executed_job`) and ends
with the job's state.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..workspace import read_json
from ..workspace.layout import ETUDE_DIR
from .errors import RunStateError

CONFIG_SECTION = "Config"
INFRA_CONFIG = "config.json"  # an infra job's configuration (etude.infra.base.CONFIG)
UNSERIALIZABLE = "__unserializable__"


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


def dependency_tasks(task: Any, dependencies: set[str]) -> dict[str, Any]:
    """{identifier: task} of the tasks in `task`'s configuration that were its dependencies
    (their identifiers are in its params.json)."""
    from ..config import Task, digest, walk

    found: dict[str, Any] = {}
    for _, child in walk(task, "task")[1:]:
        if isinstance(child, Task):
            key = digest(child).hex()
            if key in dependencies:
                found[key] = child
    return found


def submit_again(task: Any, dependencies: dict[str, Any]) -> None:
    """Submit `task`'s dependencies (each after its own), then `task`, so the scheduler waits
    for them as the first time: a done one is reused, a failed one runs again."""
    from ..config import walk

    wanted = {id(child) for child in dependencies.values()}
    submitted: set[int] = set()

    def visit(current: Any) -> None:
        if id(current) in submitted:
            return
        submitted.add(id(current))
        for _, child in walk(current, "task")[1:]:
            if id(child) in wanted:
                visit(child)
        current.submit()

    visit(task)


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
        if isinstance(value, str) and isinstance(old, (list, tuple, dict)):
            # a run shows a list or dict of plain values as its JSON text; either form works
            try:
                value = json.loads(value)
            except ValueError:
                pass  # left as text: the task's validation says what it expected
        if old == value or (isinstance(old, tuple) and list(old) == value):
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
    edits = meta.get("edited", {}).get(CONFIG_SECTION, {})
    if not source.is_dir():
        raise RunStateError(f"{source}: the source job's folder is gone (cleaned or deleted), "
                            "so its configuration cannot be rebuilt. Clone the run of a job "
                            "whose folder exists.")
    params = _read_params(source)
    if _is_infra(source, params):
        return _run_infra_clone(run, source, edits)
    if params is None or "config" not in params:
        raise RunStateError(
            f"{source}: neither a task's job folder (no configuration in .etude/params.json) "
            "nor an infra method's (no config.json): there is nothing to rebuild. Clone the "
            "run of another job.")
    task = thaw(params["config"])
    # Its dependencies are tasks of its configuration: found before the edits change their
    # identifiers, and submitted first (a done one is reused).
    dependencies = dependency_tasks(task, set(params.get("dependencies") or ()))
    for change in apply_edits(task, edits):
        print(f"edited {change}")
    from ..scheduler.entry import experiment

    # The job joins the draft's project (the source job's experiment) when that is a valid
    # experiment name, so the clone's job is listed beside the job it was cloned from.
    project = run.project
    name = project if project and "/" not in project and not project.startswith(".") \
        else f"clone-{run.id[:12]}"
    try:
        with experiment(params.get("workspace") or run.workspace, name):
            submit_again(task, dependencies)
    finally:
        _record_job(run, task)
    return 0


def _read_params(source: Path) -> dict[str, Any] | None:
    try:
        params = read_json(source / ETUDE_DIR / "params.json")
    except FileNotFoundError:  # an infra result computed in its caller's process has none
        return None
    return params if isinstance(params, dict) else None


def _is_infra(source: Path, params: dict[str, Any] | None) -> bool:
    """An infra method's job folder: `params.json` names the method, or (computed in its
    caller's process, or a MapInfra uid folder) it holds the object's `config.json`."""
    if params is not None:
        return "infra" in params
    return (source / INFRA_CONFIG).is_file()


def _run_infra_clone(run: Any, source: Path, edits: dict[str, Any]) -> int:
    """Rebuild the infra job's object with the edits, and call its method as the job did."""
    # Lazily: pydantic and the infra are imported only for a clone of an infra job.
    from ..infra.rebuild import check_cluster, edited_owner, load_source, run_again

    found = load_source(source)
    # `__unserializable__` stands for a configuration config.json could not hold: no field.
    edits = {path: value for path, value in edits.items() if path != UNSERIALIZABLE}
    prefix = f"{CONFIG_SECTION}/"
    owner, changes = edited_owner(found, edits, prefix=prefix)
    for change in changes:
        print(f"edited {change}")
    for note in check_cluster(owner, found.field, prefix):
        print(f"note: {note}")
    folder = owner.__dict__[found.field].uid_folder()
    try:
        outcome = run_again(owner, found.field, found.items, prefix)
    finally:
        _record_folder(run, folder)
    if not outcome.started:
        print("its result was in the cache already: nothing was computed again")
    for job in outcome.started:
        print(f"computed by job {_relative(run, job)}")
    return 0


def _record_job(run: Any, task: Any) -> None:
    """Link the draft to the job it became (also when the job failed)."""
    try:
        folder = Path(task.jobpath)
    except Exception:  # not submitted: nothing to link
        return
    _record_folder(run, folder)


def _record_folder(run: Any, folder: Path) -> None:
    relative = _relative(run, folder)
    print(f"ran as job {relative}")
    run._edit(lambda meta: meta.__setitem__("executed_job", relative))


def _relative(run: Any, folder: Path) -> str:
    root = Path(run.workspace)
    return folder.relative_to(root).as_posix() if folder.is_relative_to(root) else str(folder)


if __name__ == "__main__":
    sys.exit(main())
