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
        """`task/short-id`, as the scheduler and the command line print jobs."""
        return f"{self.task_name}/{self.job_id[:12]}"

    def is_done(self) -> bool:
        """Whether the done marker exists (see `workspace.status.check_done` to validate it)."""
        return os.path.exists(self.done)


def short_name(type_name: str) -> str:
    """`NAME` of the job files: the class name in lower case."""
    return type_name.rsplit(".", 1)[-1].lower()


class Workspace:
    """A workspace folder; creating the object touches nothing on disk."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()
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
                if (uid / ETUDE_DIR).is_dir():
                    yield JobDir(uid, INFRA_JOB_NAME)
                chunks = uid / "jobs"  # MapInfra: one job folder per chunk of items
                if chunks.is_dir():
                    for chunk in sorted(chunks.iterdir()):
                        if (chunk / ETUDE_DIR).is_dir():
                            yield JobDir(chunk, INFRA_JOB_NAME)

    def find_job(self, reference: str) -> JobDir:
        """The job whose identifier starts with `reference` (or whose folder is `reference`).

        Raises `WorkspaceError` when none or several match, listing the candidates.
        """
        candidate = Path(reference)
        if candidate.is_dir() and (candidate / ETUDE_DIR).is_dir():
            resolved = candidate.resolve()
            return JobDir(resolved, short_name(resolved.parent.name))
        ref = reference.lower()
        matches = [j for j in self.iter_job_dirs() if j.job_id.startswith(ref)]
        if not matches:
            raise WorkspaceError(
                f"no job id starts with {reference!r} in {self.jobs}. List jobs with "
                "`etude jobs list` (check --workspace)."
            )
        if len(matches) > 1:
            shown = ", ".join(f"{j.task_name}/{j.job_id[:12]}" for j in matches[:5])
            raise WorkspaceError(
                f"{reference!r} matches {len(matches)} jobs ({shown}); give more characters."
            )
        return matches[0]


#: The workspace of the running experiment or job (for `@cache`).
current_workspace: ContextVar[Workspace | None] = ContextVar("etude_workspace", default=None)
