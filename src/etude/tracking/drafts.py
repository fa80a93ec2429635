"""Runs made to be executed by an agent rather than here: `Run.create` (a draft from a
repository and an entry script), `execute_remotely` (this script goes on in an agent), and
function runs (`create_function_task`: one function of this script, run by an agent).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..workspace.run_folder import RunFolder, append_edit, runs_root
from .errors import RunStateError
from .sections import flatten_section, plain_values

if TYPE_CHECKING:
    from .run import Run

FUNCTION_SECTION = "Function"


# -- Run.create ---------------------------------------------------------------------------
def create_draft(cls: type[Run], *, project: str, name: str, script: str, repo: str | None,
                 branch: str | None, commit: str | None, working_directory: str | None,
                 argv: list[str], packages: list[str] | str | None, type: str,
                 tags: list[str], comment: str | None, workspace: Any) -> Run:
    from .live import _check, new_meta
    from .run import new_run_id
    from .where import resolve_workspace

    _check(project, name, type, tags)
    if not isinstance(script, str) or not script:
        raise ValueError("Run.create: script= names the entry script (relative to repo=, or a "
                         "file on this machine).")
    root = resolve_workspace(workspace)
    code = (_git_code(repo, branch, commit, script, working_directory) if repo
            else _script_code(script, working_directory))
    folder = RunFolder(runs_root(root) / new_run_id())
    meta = new_meta(folder.run_id, time.time(), project=project, name=name, type=type,
                    tags=tags, comment=comment)
    folder.write_meta(meta)
    environment = {
        "created_by": "Run.create",
        "argv": [code["script"] or script, *[str(arg) for arg in argv]],
        "script": code["script"],
        "cwd": code["working_dir"],
        "packages": _packages(packages),
        "code": code,
        "problems": [],
    }
    folder.write_environment(environment)
    folder.write_status({"state": "draft"})
    append_edit(root, folder.run_id)
    return cls(folder, root)


def _git_code(repo: str, branch: str | None, commit: str | None, script: str,
              working_directory: str | None) -> dict[str, Any]:
    local = os.path.isdir(repo)
    if Path(script).is_absolute():
        raise ValueError(f"Run.create: script {script!r} must be relative to repo={repo!r}.")
    return {
        "kind": "git",
        "root": os.path.abspath(repo) if local else None,
        "remote": None if local else repo,
        "repo": repo,
        "branch": branch,
        "commit": commit,
        "script": Path(script).as_posix(),
        "working_dir": working_directory or ".",
        "diff": "",
        "untracked": [],
        "skipped_untracked": [],
    }


def _script_code(script: str, working_directory: str | None) -> dict[str, Any]:
    path = os.path.abspath(script)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"Run.create: script {path} cannot be read ({error}); give repo= "
                         "for a script in a repository, or the path of a readable file.") \
            from error
    return {"kind": "script", "script": path,
            "working_dir": os.path.abspath(working_directory or os.path.dirname(path)),
            "text": text}


def _packages(packages: list[str] | str | None) -> list[str]:
    if packages is None:
        return []
    lines = packages.splitlines() if isinstance(packages, str) else list(packages)
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# -- execute_remotely ---------------------------------------------------------------------
def execute_remotely(run: Run, queue: str, clone: bool, exit_process: bool) -> Run | None:
    from .lifecycle import check_queue, clone_run, enqueue

    live = run._live
    if live is not None and live.agent:
        return None  # this is the agent's execution: go on
    if live is None:
        raise RunStateError(f"run {run.id}: execute_remotely() is called on the run this "
                            "process records (the one Run.init() returned).")
    check_queue(queue)
    if not clone and not exit_process:
        raise ValueError("execute_remotely(clone=False, exit_process=False): the run cannot be "
                         "both queued and running here; pass clone=True to go on locally.")
    live.wait_capture()
    if clone:
        copy_ = clone_run(run, name=run.name, project=None, comment=None)
        enqueue(copy_, queue)
        if exit_process:
            run.close()
            raise SystemExit(0)
        return copy_
    live.close("draft", None, None, None)
    _clear_outputs(run)
    enqueue(run, queue)
    print(f"etude: run {run.id} enqueued on {queue!r}; an agent will run it "
          f"(etude agent --queue {queue}).", file=sys.stderr)
    raise SystemExit(0)


def _clear_outputs(run: Run) -> None:
    """What ran here before execute_remotely() is not part of the run an agent will make."""
    folder = run._folder
    with folder.locked():
        for path in (folder.scalars, folder.events, folder.console):
            path.unlink(missing_ok=True)
        shutil.rmtree(folder.files, ignore_errors=True)
        folder.write_status({"state": "draft"})


# -- function runs ------------------------------------------------------------------------
def create_function_task(run: Run, func: Any, func_name: str | None, task_name: str | None,
                         kwargs: dict[str, Any]) -> Run | None:
    if not callable(func):
        raise TypeError(f"create_function_task: func must be a function, got "
                        f"{type(func).__name__}.")
    name = func_name or getattr(func, "__name__", None)
    if not name or name == "<lambda>":
        raise ValueError("create_function_task: a lambda has no name the agent can find; "
                         "define the function with def, or pass func_name=.")
    live = run._live
    if live is None:
        raise RunStateError("create_function_task: function runs are made from within a run "
                            "this process records (call Run.init() first).")
    if live.agent and live.meta.get("function", {}).get("name") == name:
        _run_function(run, func, kwargs)  # the agent's execution of this function run
    if live.agent and live.meta.get("function"):
        return None  # another function of the script: not this run's
    values = plain_values(kwargs, f"create_function_task({name})")
    flat = flatten_section(values)
    live.wait_capture()
    return _function_draft(run, name, task_name, flat)


def _function_draft(run: Run, name: str, task_name: str | None,
                    flat: dict[str, Any]) -> Run:
    from .live import new_meta
    from .run import Run, new_run_id

    folder = RunFolder(runs_root(run.workspace) / new_run_id())
    meta = new_meta(folder.run_id, time.time(), project=run.project,
                    name=task_name or f"{run.name}: {name}", type=run.type,
                    tags=list(run.tags), comment=None, parent=run.id)
    meta["params"] = {FUNCTION_SECTION: flat}
    meta["edited"] = {FUNCTION_SECTION: copy.deepcopy(flat)}
    meta["function"] = {"name": name}
    folder.write_meta(meta)
    environment = run.environment  # (a live run's may be named in its unwritten run.json)
    if not environment:
        raise RunStateError(f"run {run.id}: its code state is not recorded yet (environment "
                            "capture failed or is switched off), so no agent could run the "
                            "function.")
    folder.write_environment(environment)
    folder.write_status({"state": "draft"})
    append_edit(run.workspace, folder.run_id)
    return Run(folder, run.workspace)


def _run_function(run: Run, func: Any, kwargs: dict[str, Any]) -> None:
    """Call the function with the run's (edited) arguments, end the run, end the process."""
    values = run.connect(dict(kwargs), name=FUNCTION_SECTION)
    func(**values)
    run.close()
    raise SystemExit(0)
