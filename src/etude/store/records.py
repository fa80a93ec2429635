"""What the index keeps of a job, and how it is read from a job folder.

The folder is the source of truth; a `JobRecord` is what `read_job_folder` makes of it, and
what the scheduler sends to the index as it goes (the same fields, from memory). Parameters
are flattened to `(path, value)` pairs: `model.hidden = 128`; a nested configuration also gives
its own path with its type's name (`model = "xp.Model"`).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..workspace import CorruptFileError, JobDir, Workspace, read_json, read_status
from ..workspace.layout import INFRA_JOB_NAME

#: (kind, num, text) of a flattened value; see schema.job_params.
Value = tuple[str, float | None, str | None]
AskLauncher = Callable[[dict[str, Any]], "tuple[str, str] | None"]
MAX_DEPTH = 32  # nesting kept when flattening parameters


@dataclass
class JobRecord:
    """One job as the index holds it. `folder` is relative to the workspace."""

    folder: str
    id: str
    task: str
    state: str
    kind: str = "task"
    reason: str | None = None
    message: str | None = None
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None
    retries: int = 0
    launcher: str | None = None
    cluster_job_id: str | None = None
    experiment: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Value] | None = None  # None: not known (keep what the index has)
    problems: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


# -- values ---------------------------------------------------------------------------------
def typed_value(value: Any) -> Value:
    """The (kind, num, text) columns for a plain value."""
    if value is None:
        return ("null", None, None)
    if isinstance(value, bool):
        return ("bool", 1.0 if value else 0.0, "true" if value else "false")
    if isinstance(value, int):
        return ("int", float(value) if abs(value) < 2**63 else None, str(value))
    if isinstance(value, float):
        return ("float", None if math.isnan(value) else value, repr(value))
    if isinstance(value, str):
        return ("str", None, value)
    return ("json", None, json.dumps(value, sort_keys=True, default=str))


def _scalar(raw: Any) -> tuple[bool, Any]:
    """Decode one serialized scalar (see config.serialize); (False, None) for containers."""
    if raw is None or isinstance(raw, (str, bool, int, float)):
        return True, raw
    if not isinstance(raw, dict):
        return False, None
    if "path" in raw:
        return True, str(raw["path"])
    if "enum" in raw:
        return True, str(raw.get("name"))
    if "float_bits" in raw:
        return True, struct.unpack(">d", bytes.fromhex(raw["float_bits"]))[0]
    if "float" in raw:
        return True, float(raw["float"])
    if "int" in raw:
        return True, int(raw["int"], 16)
    return False, None


def flatten_config(data: Any) -> dict[str, Value]:
    """Flattened parameters of a job's serialized configuration (`params.json`'s `config`).

    Raises ValueError (KeyError, IndexError, TypeError) for a malformed document.
    """
    objects, out = data["objects"], {}

    def config(index: int, prefix: str, depth: int) -> None:
        record = objects[index]
        for name, raw in record["fields"].items():
            value(raw, f"{prefix}{name}", depth)

    def value(raw: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        is_scalar, plain = _scalar(raw)
        if is_scalar:
            out[path] = typed_value(plain)
        elif isinstance(raw, dict) and "ref" in raw:
            out[path] = ("type", None, _class_name(objects[raw["ref"]].get("class", {})))
            config(raw["ref"], f"{path}.", depth + 1)
        elif isinstance(raw, dict) and "dict" in raw:
            for key, item in raw["dict"].items():
                value(item, f"{path}.{key}", depth + 1)
        else:
            items = raw if isinstance(raw, list) else next(iter(raw.values()), [])
            plain_items = [_scalar(item) for item in items]
            if all(ok for ok, _ in plain_items):
                out[path] = ("list", None, json.dumps([v for _, v in plain_items], default=str))
            else:
                for i, item in enumerate(items):
                    value(item, f"{path}.{i}", depth + 1)

    config(data["root"], "", 0)
    return out


def _class_name(ref: dict[str, Any]) -> str:
    """`module.QualName`; a class of the experiment script is named after the script's file,
    as task names are (see config.naming.type_name)."""
    module = ref.get("module", "?")
    if module == "__main__" and ref.get("file"):
        module = os.path.splitext(os.path.basename(ref["file"]))[0]
    return f"{module}.{ref.get('qualname', '?')}"


def flatten_plain(data: Any, prefix: str = "", depth: int = 0) -> dict[str, Value]:
    """Flattened values of a plain JSON object (a pydantic infra's `config.json`)."""
    out: dict[str, Value] = {}
    if not isinstance(data, dict) or depth > MAX_DEPTH:
        return out
    for key, item in data.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            out.update(flatten_plain(item, f"{path}.", depth + 1))
        elif isinstance(item, (list, dict)):
            out[path] = ("list", None, json.dumps(item, sort_keys=True, default=str))
        else:
            out[path] = typed_value(item)
    return out


# -- reading a folder -----------------------------------------------------------------------
def _read_object(path: Any, problems: list[str]) -> dict[str, Any] | None:
    try:
        value = read_json(path)
    except FileNotFoundError:
        return None
    except CorruptFileError as exc:
        problems.append(str(exc))
        return None
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a JSON object, found {type(value).__name__}")
        return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _mtime(path: Any) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def attempts_before(job: JobDir) -> int:
    """How many earlier attempts of `job` were archived (`.etude/history/*-process.json`)."""
    try:
        return sum(1 for name in os.listdir(job.history) if name.endswith("-process.json"))
    except OSError:
        return 0


def relative_folder(workspace: Workspace, job: JobDir) -> str:
    try:
        return job.path.relative_to(workspace.path).as_posix()
    except ValueError:
        return job.path.as_posix()


def read_job_folder(
    workspace: Workspace, job: JobDir, ask_launcher: AskLauncher | None = None
) -> JobRecord:
    """Everything the index keeps of `job`, read from its folder; never raises for bad files."""
    problems: list[str] = []
    meta = _read_object(job.params, problems)
    if meta is None and not problems:
        problems.append(f"{job.params}: missing (an interrupted submission, or not a job folder)")
    meta = meta or {}
    task = meta.get("type")
    if not isinstance(task, str) or not task:
        task = job.task_name
    tags = meta.get("tags")
    if not isinstance(tags, dict):
        tags = {}
    kind = "infra" if job.name == INFRA_JOB_NAME and "infra" in meta else "task"
    status = read_status(job, ask_launcher)
    done = _read_object(job.done, []) or {}
    failed = _read_object(job.failed, []) or {}
    process = _read_object(job.process, []) or {}
    scheduled = _read_object(job.scheduled, []) or {}
    experiment = process.get("experiment") if process else _last_launcher(job)
    record = JobRecord(
        folder=relative_folder(workspace, job),
        id=job.job_id,
        task=task,
        state=status.state,
        kind=kind,
        reason=status.reason,
        message=status.message or None,
        submitted=_number(scheduled.get("submitted")) or _mtime(job.params),
        started=_number(process.get("started")) or _number(done.get("started")),
        ended=_number(done.get("ended")) if status.state == "done" else _number(
            failed.get("ended")
        ) if status.state == "error" else None,
        retries=attempts_before(job),
        launcher=_text(process.get("launcher")),
        cluster_job_id=_text(process.get("slurm_job_id") or scheduled.get("slurm_job_id")),
        experiment=experiment if isinstance(experiment, str) else None,
        tags=tags,
        params=_params(job, meta, kind, problems),
        problems=problems + status.problems,
    )
    return record


def _last_launcher(job: JobDir) -> str | None:
    """The experiment that launched the latest archived attempt of `job`, if any."""
    try:
        names = sorted(n for n in os.listdir(job.history) if n.endswith("-process.json"))
    except OSError:
        return None
    for name in reversed(names):
        record = _read_object(job.history / name, [])
        if record is not None:
            found = record.get("experiment")
            return found if isinstance(found, str) else None
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _params(job: JobDir, meta: dict[str, Any], kind: str, problems: list[str]) -> dict[str, Value]:
    if kind == "infra":
        # A MapInfra chunk lives in UID/jobs/CHUNK/: its configuration is the uid folder's.
        for folder in (job.path, job.path.parent.parent):
            config = _read_object(folder / "config.json", problems)
            if config is not None:
                return flatten_plain(config)
        return {}
    config = meta.get("config")
    if config is None:
        return {}
    try:
        return flatten_config(config)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        problems.append(f"{job.params}: parameters cannot be read ({type(exc).__name__}: {exc})")
        return {}


def iter_records(
    workspace: Workspace, ask_launcher: AskLauncher | None = None
) -> Iterator[JobRecord]:
    """A record for every job folder of `workspace` (see `Workspace.iter_job_dirs`)."""
    for job in workspace.iter_job_dirs():
        yield read_job_folder(workspace, job, ask_launcher)
