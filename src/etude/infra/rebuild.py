"""An infra job's computation again, with edited values: what `etude agent` runs for a clone of
the run of an infra job (`etude.tracking.job_clone`).

The object comes back from the source job's payload (`job.pkl`), in this process, the way a
job process loads it (the user's code on `sys.path`, the script loaded for its classes, the
submitter's working directory). Edits are dotted paths of the object's configuration, as the
job's run shows them (`coeff`, `inner.depth`, `infra.version`), set as `clone_obj` sets them
and validated by pydantic. The method is then called the way the original call did: a
TaskInfra's job for the new uid, a MapInfra's items of the source job, with the same infra
options, so results land in the usual cache folder and the usual reuse rule holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core

from .base import BaseInfra
from .errors import InfraConfigError, JobError
from .jobs import FAILED, resolve_cluster
from .map import JOBS, MapInfra
from .pickling import read_payload
from .results import job_dir, payload_path


@dataclass
class Source:
    """What an infra job computed: the object, its infra field and (MapInfra) its items."""

    owner: pydantic.BaseModel
    field: str
    items: list[Any] | None
    folder: Path


@dataclass
class Outcome:
    """Where the results are (the uid folder) and the job folders started for them (none:
    everything was cached already)."""

    folder: Path
    started: list[Path] = field(default_factory=list)


def load_source(folder: Path) -> Source:
    """The object behind the infra job folder `folder`: a TaskInfra uid folder, a MapInfra
    chunk (`UID/jobs/CHUNK`, its items), or a MapInfra uid folder (the items of all its
    chunks). Changes this process's working directory and `sys.path` as a job process's.

    Raises InfraConfigError when no payload records the object (a result computed in its
    caller's process, with cluster=None).
    """
    payload = payload_path(job_dir(folder))
    if payload.exists():
        owner, name, items, _ = read_payload(payload, in_job_process=True)
        return Source(owner, name, items, folder)
    chunks = sorted((folder / JOBS).glob(f"*/{payload.name}"))
    if chunks:
        owner, name, items, _ = read_payload(chunks[0], in_job_process=True)
        every = list(items or [])
        for chunk in chunks[1:]:
            every += read_payload(chunk, in_job_process=True)[2] or []
        return Source(owner, name, every, folder)
    raise InfraConfigError(
        f"{folder}: no {payload.name} records how to rebuild this object: its result was "
        "computed in the caller's process (infra cluster=None), which an agent cannot "
        "repeat. Call the method with the new values yourself, or compute the source with "
        "cluster='local' (or 'slurm') and clone that job's run."
    )


def edited_owner(
    source: Source, edits: dict[str, Any], prefix: str = ""
) -> tuple[pydantic.BaseModel, list[str]]:
    """A new object: the source's with `edits` ({dotted path: value}) set and validated;
    returns it and the changes made (text). A path that names nothing, or a value pydantic
    refuses, raises InfraConfigError naming `prefix + path`."""
    owner = source.owner
    changes: dict[str, Any] = {}
    done = []
    for path, value in edits.items():
        old = _plain(_lookup(owner, path, prefix))
        new = value
        if isinstance(value, str) and isinstance(old, (list, dict)):
            # a list or dict parameter is shown (and may be edited) as its JSON text
            try:
                new = json.loads(value)
            except ValueError:
                pass  # left as text: pydantic says what it expected
        if new == old:
            continue
        changes[path] = new
        done.append(f"{prefix}{path}: {old!r} -> {new!r}")
    infra: BaseInfra = owner.__dict__[source.field]
    if infra.workdir is not None and f"{source.field}.workdir" not in changes:
        # The payload's sys.path and working directory already point to the source job's
        # frozen copy of the code: the clone runs from that copy rather than copying it again.
        changes[f"{source.field}.workdir"] = None
    try:
        new_owner = infra.clone_obj(changes)
    except pydantic.ValidationError as error:
        raise InfraConfigError(_validation_message(error, prefix, owner)) from None
    return new_owner, done


def _lookup(owner: pydantic.BaseModel, path: str, prefix: str) -> Any:
    """The value at dotted `path` of `owner`; InfraConfigError if it leads nowhere."""
    target: Any = owner
    parts = path.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        if isinstance(target, pydantic.BaseModel):
            names = type(target).model_fields
            if part not in names:
                raise InfraConfigError(
                    f"parameter {prefix}{path}: {where!r} is not a field of "
                    f"{type(target).__qualname__} (fields: {', '.join(names)})."
                )
            target = target.__dict__[part]
        elif isinstance(target, dict):
            keys = {str(key): key for key in target}
            if part not in keys:
                raise InfraConfigError(
                    f"parameter {prefix}{path}: {where!r} is not a key of the dict (keys: "
                    f"{', '.join(keys) or 'none'}); a clone sets existing values only."
                )
            target = target[keys[part]]
        else:
            raise InfraConfigError(
                f"parameter {prefix}{path}: {'.'.join(parts[:depth])!r} is a "
                f"{type(target).__name__}, not a nested model or dict, so {part!r} cannot be "
                "set inside it."
            )
    return target


def _plain(value: Any) -> Any:
    """`value` as its JSON form (what the run's parameters show), for comparisons."""
    try:
        return pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError:
        return value


def _validation_message(error: pydantic.ValidationError, prefix: str, owner: Any) -> str:
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"])
        try:
            hint = f" The source job's value: {_plain(_lookup(owner, path, prefix))!r}."
        except InfraConfigError:
            hint = ""
        lines.append(
            f"parameter {prefix}{path}: {problem['msg']} (got {problem.get('input')!r}, "
            f"{type(problem.get('input')).__name__}).{hint}"
        )
    return "\n".join(lines)


def check_cluster(owner: pydantic.BaseModel, name: str, prefix: str = "") -> list[str]:
    """Make the object's infra runnable by an agent; returns notes on what was changed.

    `cluster="debug"` (the job run inside its caller, for breakpoints) becomes `"local"`: an
    agent has nobody at the breakpoints, and the job's run gets its own process. Raises
    InfraConfigError for no folder (the result would be kept nowhere) or `cluster=None` (it
    would be computed inside the agent's process, as no job); the message names the parameter
    to set instead.
    """
    infra: BaseInfra = owner.__dict__[name]
    where = f"{type(owner).__qualname__}.{name}"
    if infra.folder is None:
        raise InfraConfigError(
            f"{where}: folder=None keeps results in memory only, so an agent's clone would "
            f"compute one and keep nothing. Set {prefix}{name}.folder to a cache folder (the "
            "workspace, to see its jobs), or call the method yourself."
        )
    if resolve_cluster(infra.cluster) is None:
        raise InfraConfigError(
            f"{where}: cluster=None computes in the caller's process, which for a clone is the "
            f"agent's, with no job of its own. Set {prefix}{name}.cluster to 'local' or "
            "'slurm', or call the method yourself."
        )
    if infra.cluster == "debug":
        infra.cluster = "local"
        return [f"{where}: cluster 'debug' runs as 'local' for an agent (no one is at the "
                "breakpoints)"]
    return []


def run_again(
    owner: pydantic.BaseModel, name: str, items: list[Any] | None, prefix: str = ""
) -> Outcome:
    """Call the infra method of `owner` in field `name` as its job did (MapInfra: on `items`)
    and wait for it. Raises the job's error (JobError) when it fails."""
    infra = owner.__dict__[name]
    folder = infra.uid_folder()
    assert folder is not None  # check_cluster
    if isinstance(infra, MapInfra):
        every = list(items or [])
        _, started = infra._fill(every, infra._item_uids(every))
        return Outcome(folder, started)
    job = infra.job()
    job.wait()
    launched = getattr(job, "launched", None) is not None
    if job.status() == FAILED:
        try:
            job.result()  # raises the failure, with the job's traceback
        except JobError as error:
            if launched:
                raise
            raise JobError(
                f"{error}\nThis failure was kept from an earlier computation of the same "
                f"values; to compute them again, set {prefix}{name}.mode to 'retry' in a clone.",
                error_type=error.error_type, folder=error.folder,
            ) from None
    return Outcome(folder, [folder] if launched else [])
