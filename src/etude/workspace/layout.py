"""Where things live in a workspace folder.

```
WORKSPACE/
  jobs/QUALIFIED_NAME/JOB_ID/      one folder per job (see JobDir)
  experiments/NAME/run.json        the jobs of the experiment's latest run
  config/QUALIFIED_NAME/ID/        @cache folders of configurations
  MODULE.CLASS.METHOD,VERSION/UID/ pydantic infra cache folders, when the infra's `folder`
                                   is the workspace (their job folders are listed too)
```
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

ETUDE_DIR = ".etude"
#: `NAME` of the files of a pydantic-infra job folder (`job.out`, `job.err`).
INFRA_JOB_NAME = "job"
#: Sub-folders that make a pydantic-infra uid folder a MapInfra cache (its item store, and
#: one job folder per chunk of items) rather than a job of its own.
MAP_CACHE_PARTS = ("items", "jobs")


def is_infra_job(uid_folder: str | os.PathLike[str]) -> bool:
    """Whether the pydantic-infra uid folder `uid_folder` is a job (a TaskInfra computation).

    A MapInfra uid folder is a cache: its jobs are its chunks (`jobs/CHUNK/`), and older
    versions of etude gave it an empty `.etude/` that must not read as an unscheduled job.
    """
    path = os.fspath(uid_folder)
    if not os.path.isdir(os.path.join(path, ETUDE_DIR)):
        return False
    return not any(os.path.isdir(os.path.join(path, part)) for part in MAP_CACHE_PARTS)


class WorkspaceError(ValueError):
    """A workspace path or a job reference that does not resolve."""


class JobDir:
    """The folder of one job: its outputs, `NAME.py/.out/.err`, and `.etude/` book-keeping."""

    __slots__ = ("name", "path")

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name

    @property
    def meta(self) -> Path:
        return self.path / ETUDE_DIR

    @property
    def params(self) -> Path:
        return self.path / ETUDE_DIR / "params.json"

    @property
    def lock(self) -> Path:
        return self.path / ETUDE_DIR / "lock"

    @property
    def done(self) -> Path:
        return self.path / ETUDE_DIR / "done.json"

    @property
    def failed(self) -> Path:
        return self.path / ETUDE_DIR / "failed.json"

    @property
    def process(self) -> Path:
        return self.path / ETUDE_DIR / "process.json"

    @property
    def scheduled(self) -> Path:
        return self.path / ETUDE_DIR / "scheduled.json"

    @property
    def outputs(self) -> Path:
        """Dynamic-output events, one JSON object per line (see `register_task_output`)."""
        return self.path / ETUDE_DIR / "task-outputs.jsonl"

    @property
    def history(self) -> Path:
        return self.path / ETUDE_DIR / "history"

    @property
    def script(self) -> Path:
        return self.path / f"{self.name}.py"

    @property
    def stdout(self) -> Path:
        return self.path / f"{self.name}.out"

    @property
    def stderr(self) -> Path:
        return self.path / f"{self.name}.err"

    @property
    def job_id(self) -> str:
        return self.path.name

    @property
    def task_name(self) -> str:
        return self.path.parent.name

    @property
    def label(self) -> str:
        """`task/short-id`, as the scheduler and the command line print jobs; a
        pydantic-infra job's `METHOD,VERSION/UID[/jobs/CHUNK]` (uids repeat across methods)."""
        if self.name == INFRA_JOB_NAME:
            parts = self.path.parts
            return "/".join(parts[-4:] if parts[-2:-1] == ("jobs",) else parts[-2:])
        return f"{self.task_name}/{self.job_id[:12]}"

    def is_done(self) -> bool:
        """Whether the done marker exists (see `workspace.status.check_done` to validate it)."""
        return os.path.exists(self.done)


def short_name(type_name: str) -> str:
    """`NAME` of the job files: the class name in lower case."""
    return type_name.rsplit(".", 1)[-1].lower()


class Workspace:
    """A workspace folder; creating the object touches nothing on disk.

    `dry_run`: the workspace as a dry run sees it, where nothing may be written: code that
    would create a folder on use (partial folders) only names it.
    """

    def __init__(self, path: str | os.PathLike[str], *, dry_run: bool = False) -> None:
        self.path = Path(path).expanduser().absolute()
        self.dry_run = dry_run
        self._task_dirs: dict[str, tuple[Path, str]] = {}

    @property
    def jobs(self) -> Path:
        return self.path / "jobs"

    @property
    def experiments(self) -> Path:
        return self.path / "experiments"

    @property
    def cache(self) -> Path:
        return self.path / "config"

    def job_dir(self, type_name: str, job_id: str) -> JobDir:
        parent = self._task_dirs.get(type_name)
        if parent is None:
            parent = self._task_dirs[type_name] = (
                self.jobs / type_name.lower(),
                short_name(type_name),
            )
        return JobDir(parent[0] / job_id, parent[1])

    def iter_job_dirs(self) -> Iterator[JobDir]:
        """Every folder under jobs/TASK/ (valid or not), sorted by task then id; then the job
        folders of pydantic-infra caches kept in the workspace (METHOD,VERSION/UID/)."""
        if self.jobs.is_dir():
            for task_dir in sorted(self.jobs.iterdir()):
                if not task_dir.is_dir():
                    continue
                name = short_name(task_dir.name)
                for job in sorted(task_dir.iterdir()):
                    if job.is_dir():
                        yield JobDir(job, name)
        yield from self._infra_job_dirs()

    def _infra_job_dirs(self) -> Iterator[JobDir]:
        if not self.path.is_dir():
            return
        for method in sorted(self.path.iterdir()):
            if "," not in method.name or not method.is_dir():
                continue  # infra method folders are named MODULE.CLASS.METHOD,VERSION
            for uid in sorted(method.iterdir()):
                if is_infra_job(uid):
                    yield JobDir(uid, INFRA_JOB_NAME)
                chunks = uid / "jobs"  # MapInfra: one job folder per chunk of items
                if chunks.is_dir():
                    for chunk in sorted(chunks.iterdir()):
                        if (chunk / ETUDE_DIR).is_dir():
                            yield JobDir(chunk, INFRA_JOB_NAME)

    def find_job(self, reference: str) -> JobDir:
        """The job that `reference` names: a job folder (absolute, relative to the current
        folder or to the workspace), else the one job whose identifier starts with it (in
        its case; in any case when nothing matches in its case: task ids are lower-case
        hexadecimal, pydantic-infra uids keep the case of their values, `arch=ResNet`).

        Raises `WorkspaceError` when none or several match, listing the candidates.
        """
        for candidate in (Path(reference), self.path / reference):
            if (candidate / ETUDE_DIR).is_dir():
                return job_dir_at(candidate.resolve())
        jobs = list(self.iter_job_dirs())
        matches = [j for j in jobs if j.job_id.startswith(reference)]
        if not matches:
            folded = reference.lower()
            matches = [j for j in jobs if j.job_id.lower().startswith(folded)]
        if not matches:
            raise WorkspaceError(
                f"no job id starts with {reference!r} in {self.path}. List jobs with "
                "`etude jobs list` (check --workspace)."
            )
        if len(matches) > 1:
            shown = ", ".join(self.reference(j) for j in matches[:5])
            more = "" if len(matches) <= 5 else ", ..."
            how = (
                "name one by its folder"
                if len({j.job_id for j in matches}) == 1
                else "give more characters, or name one by its folder"
            )
            raise WorkspaceError(
                f"{reference!r} matches {len(matches)} jobs ({shown}{more}); {how}."
            )
        return matches[0]

    def reference(self, job: JobDir) -> str:
        """How to name `job` unambiguously: its folder relative to the workspace for a
        pydantic-infra job (uids repeat across methods), else `task/short-id`."""
        if job.name != INFRA_JOB_NAME:
            return job.label
        try:
            return job.path.relative_to(self.path).as_posix()
        except ValueError:
            return str(job.path)


def job_dir_at(path: Path) -> JobDir:
    """The job folder `path`, whether a task's (`jobs/TASK/ID`) or a pydantic-infra one
    (`METHOD,VERSION/UID` or `METHOD,VERSION/UID/jobs/CHUNK`): its files are `NAME.out` with
    the task's `NAME`, or `job.out`."""
    parent = path.parent
    if parent.parent.name == "jobs" and "," not in parent.parent.parent.name:
        return JobDir(path, short_name(parent.name))
    if "," in parent.name or (parent.name == "jobs" and "," in parent.parent.parent.name):
        return JobDir(path, INFRA_JOB_NAME)
    return JobDir(path, short_name(parent.name))


#: The workspace of the running experiment or job (for `@cache`).
current_workspace: ContextVar[Workspace | None] = ContextVar("etude_workspace", default=None)
