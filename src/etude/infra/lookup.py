"""Find the folder, config and logs of a job from its cluster job id (as `squeue` shows it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..workspace import read_json
from ..workspace.atomic import CorruptFileError
from .base import CONFIG
from .errors import InfraConfigError

#: Where job folders lie under an infra folder: TaskInfra uid folders, MapInfra chunk folders.
_PATTERNS = ("*/*/.etude", "*/*/jobs/*/.etude")


@dataclass
class SlurmJobInfo:
    """What `find_slurm_job` found: the job folder, its uid folder, config and log files."""

    folder: Path
    uid_folder: Path
    config: dict[str, Any] | None
    stdout: Path
    stderr: Path
    records: dict[str, Any]

    def read_stdout(self) -> str:
        return self.stdout.read_text(errors="replace") if self.stdout.exists() else ""

    def read_stderr(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""


def _ids(record: dict[str, Any]) -> set[str]:
    found = {str(record[k]) for k in ("slurm_job_id", "pid") if record.get(k) is not None}
    array, task = record.get("slurm_array_job_id"), record.get("slurm_array_task_id")
    if array is not None and task is not None:
        found.add(f"{array}_{task}")
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        value = read_json(path)
    except (FileNotFoundError, CorruptFileError):
        return {}
    return value if isinstance(value, dict) else {}


def find_slurm_job(job_id: str | int, folder: str | os.PathLike[str]) -> SlurmJobInfo | None:
    """The job whose Slurm id (`123`, or `123_4` in an array) or local pid is `job_id`.

    Searches the job folders under the infra `folder` (the one given as `infra.folder`);
    returns None if no job there has that id.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InfraConfigError(f"find_slurm_job: {root} is not a folder; give the infra folder.")
    wanted = str(job_id)
    for meta in sorted(root.glob(_PATTERNS[0])) + sorted(root.glob(_PATTERNS[1])):
        records = {name: _read(meta / f"{name}.json") for name in ("scheduled", "process")}
        if not any(wanted in _ids(r) for r in records.values()):
            continue
        job = meta.parent
        uid_folder = job.parent.parent if job.parent.name == "jobs" else job
        config = _read(uid_folder / CONFIG) or None
        return SlurmJobInfo(job, uid_folder, config, job / "job.out", job / "job.err", records)
    return None
