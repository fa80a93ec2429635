"""What TaskInfra and MapInfra share: their fields, uids, and the cache folder layout.

```
FOLDER/
  MODULE.CLASS.METHOD,VERSION/      one folder per decorated method and infra version
    UID/                            one folder per uid (see `uid.py`), a job folder (JobDir)
      config.json                   the object's whole config (rebuilds it: iter_cached)
      uid.json                      the values that make the uid (defaults left out)
      full-uid.json                 the same with defaults: checked against the class
      result.pkl                    TaskInfra: the result (written atomically)
      items/                        MapInfra: the per-item store
      jobs/CHUNK/                   MapInfra: one job folder per chunk of items
      job.pkl, job.out, job.err     a job process's payload and logs
      .etude/                       lock, process.json, done.json, failed.json, error.pkl
    code/STAMP/                     workdir copies
```
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import pydantic

from ..config.naming import type_name
from ..workspace import JobDir, read_json
from ..workspace.atomic import CorruptFileError
from . import permissions as sharing
from .errors import CacheMismatchError, InfraConfigError
from .method import Runtime, infra_fields
from .permissions import Permissions
from .results import job_dir, write_json_quick
from .uid import digest, encode_model, python_config, uid_string
from .workdir import WorkDir

logger = logging.getLogger("etude.infra")

Cluster = Literal["debug", "local", "slurm", "auto", "threadpool", "processpool"]
#: MapInfra only: chunks of items computed by workers of this process, without job folders.
POOLS = ("threadpool", "processpool")
Mode = Literal["cached", "force", "retry", "read-only"]
CONFIG, UID_CONFIG, FULL_UID_CONFIG = "config.json", "uid.json", "full-uid.json"
_VERSION = re.compile(r"^[A-Za-z0-9._+-]+$")
_METHOD_FOLDERS: dict[tuple[str, type, str, str], str] = {}
#: `keep_in_ram=True`: results kept for the life of the process, by `BaseInfra._ram_key`.
RAM: dict[tuple[Any, ...], Any] = {}


class Keys(NamedTuple):
    """The identity of one computation: its uid and the configs behind it."""

    uid: str
    short: dict[str, Any]
    full: dict[str, Any]
    full_digest: str


class BaseInfra(pydantic.BaseModel):
    """Fields and uid machinery common to TaskInfra and MapInfra."""

    __etude_infra__: ClassVar[bool] = True
    #: Whether the uid folder is itself a job folder (TaskInfra) or a cache of items whose
    #: jobs live below it (MapInfra).
    _uid_folder_is_job: ClassVar[bool] = True
    model_config = pydantic.ConfigDict(extra="forbid")

    folder: Path | None = None
    cluster: Cluster | None = None
    mode: Mode = "cached"
    version: str = "0"
    workdir: WorkDir | None = None
    keep_in_ram: bool = False
    permissions: Permissions | None = None
    # job resources (Slurm options; the local launcher ignores them)
    job_name: str | None = None
    timeout_min: pydantic.PositiveInt | None = None
    nodes: pydantic.PositiveInt | None = None
    tasks_per_node: pydantic.PositiveInt | None = None
    cpus_per_task: pydantic.PositiveInt | None = None
    gpus_per_node: pydantic.NonNegativeInt | None = None
    mem_gb: pydantic.PositiveFloat | None = None
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_constraint: str | None = None
    slurm_additional_parameters: dict[str, str | int | float | bool] | None = None
    slurm_setup: list[str] | None = None

    _rt: Runtime | None = pydantic.PrivateAttr(None)
    _applied: str | None = pydantic.PrivateAttr(None)

    @pydantic.field_validator("folder", mode="after")
    @classmethod
    def _absolute(cls, folder: Path | None) -> Path | None:
        return None if folder is None else folder.expanduser().absolute()

    @pydantic.field_validator("permissions", mode="before")
    @classmethod
    def _check_permissions(cls, value: Any) -> Any:
        return sharing.check(value)  # before validation: True is not the mode 1

    @pydantic.field_validator("version", mode="after")
    @classmethod
    def _check_version(cls, version: str) -> str:
        if not _VERSION.match(version):
            raise ValueError(
                f"version {version!r} must be made of letters, digits, '.', '_', '+' or '-' "
                "(it names a folder), e.g. '2' or '1.1'"
            )
        return version

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> BaseInfra:
        # pydantic deep-copies a field's default for each new object; an infra not yet tied
        # to an object holds only scalars and two small containers: copy just those.
        if self.__pydantic_private__ and self.__pydantic_private__.get("_rt") is not None:
            return super().__deepcopy__(memo)
        new = self.__copy__()
        for name in ("workdir", "slurm_additional_parameters", "slurm_setup"):
            value = new.__dict__[name]
            if value is not None:
                new.__dict__[name] = copy.deepcopy(value, memo)
        return new

    def __set_name__(self, owner: type, name: str) -> None:
        # called when a class body holds an infra: only a pydantic model can own one
        if not (isinstance(owner, type) and issubclass(owner, pydantic.BaseModel)):
            raise InfraConfigError(
                f"{owner.__qualname__}.{name}: {owner.__qualname__} is not a pydantic model, "
                f"and a {type(self).__name__} is a field of one. Derive it from "
                "pydantic.BaseModel."
            )

    def _mark_applied(self, name: str) -> None:
        if self._applied is not None:
            raise InfraConfigError(
                f"@infra.apply on {name}: this infra already decorates {self._applied}; each "
                "infra field serves one method. Declare another field, e.g. `infra2: "
                "TaskInfra = TaskInfra()`."
            )
        self._applied = name

    # --- the owner -------------------------------------------------------------------------

    def _runtime(self) -> Runtime:
        runtime = self._rt
        if runtime is None:
            raise InfraConfigError(
                "this infra is not attached to an object: use it through a model instance "
                "(obj.infra), whose class decorates a method with @infra.apply."
            )
        return runtime

    def _where(self) -> str:
        runtime = self._runtime()
        return f"{type(runtime.owner).__qualname__}.{runtime.get_method().name}"

    # --- uids and configs ------------------------------------------------------------------

    def _keys(self) -> Keys:
        runtime = self._runtime()
        owner = runtime.owner
        method = runtime.get_method()
        short, full = encode_model(
            owner, type(owner).__qualname__, exclude=method.cache_exclusion(owner)
        )
        return Keys(uid_string(short), short, full, digest(full)[:16])

    def _ram_key(self, keys: Keys) -> tuple[Any, ...]:
        """Where `keep_in_ram` keeps this object's result(s) in `RAM`."""
        runtime = self._runtime()
        name = runtime.get_method().name
        return (type(runtime.owner), name, self.version, self.folder, keys.uid, keys.full_digest)

    def uid(self) -> str:
        """The uid of this object's cache: readable non-default values and a short hash."""
        return self._keys().uid

    def config(self, uid: bool = True, exclude_defaults: bool = False) -> dict[str, Any]:
        """The owner's config: with `uid`, only what makes its class uid (infra: version)."""
        return python_config(self._runtime().owner, uid=uid, exclude_defaults=exclude_defaults)

    def method_folder(self) -> Path | None:
        """`FOLDER/MODULE.CLASS.METHOD,VERSION`, or None without a folder."""
        return None if self.folder is None else Path(self._method_folder())

    def _method_folder(self) -> str:
        runtime = self._runtime()
        cls = type(runtime.owner)
        name = runtime.get_method().name
        key = (str(self.folder), cls, name, self.version)
        found = _METHOD_FOLDERS.get(key)
        if found is None:
            found = f"{key[0]}/{type_name(cls)}.{name},{self.version}"
            _METHOD_FOLDERS[key] = found
        return found

    def uid_folder(self, create: bool = False) -> Path | None:
        """The folder of this object's uid (None without a folder); `create` makes it."""
        if self.folder is None:
            return None
        path = Path(self._method_folder()) / self.uid()
        if create:
            self._prepare_folder(self._keys(), rewrite=False)
        return path

    def _prepare_folder(self, keys: Keys, *, rewrite: bool) -> JobDir:
        """Create the uid folder with its config files; check them if they exist."""
        job = job_dir(f"{self._method_folder()}/{keys.uid}")
        # A MapInfra uid folder is a cache, not a job: no `.etude/` (see `is_infra_job`).
        (job.meta if self._uid_folder_is_job else job.path).mkdir(parents=True, exist_ok=True)
        full_path = job.path / FULL_UID_CONFIG
        if full_path.exists() and not rewrite:
            self._check_configs(job.path, keys)
            return job
        owner = self._runtime().owner
        write_json_quick(job.path / UID_CONFIG, keys.short)
        write_json_quick(job.path / CONFIG, _whole_config(owner))
        write_json_quick(full_path, keys.full)
        self._runtime().checked.add(str(job.path))
        self._share(job.path)
        return job

    def _share(self, uid_folder: Path) -> None:
        """Apply `permissions` to the method folder and to everything in `uid_folder`."""
        if self.permissions is not None:
            sharing.apply(self.permissions, [uid_folder.parent], recursive=False)
            sharing.apply(self.permissions, [uid_folder], recursive=True)

    def _share_job(self, job: JobDir) -> None:
        """Apply `permissions` after a job process wrote into `job` (its uid folder)."""
        self._share(job.path)

    def _check_configs(self, folder: Path, keys: Keys) -> None:
        """Raise `CacheMismatchError` if `folder` was made for another full config."""
        checked = self._runtime().checked
        if str(folder) in checked:
            return
        try:
            stored = read_json(folder / FULL_UID_CONFIG)
        except FileNotFoundError:
            return
        except CorruptFileError as exc:
            logger.warning("etude: %s; rewriting it", exc)
            write_json_quick(folder / FULL_UID_CONFIG, keys.full)
            stored = keys.full
        if stored != keys.full:
            raise self._mismatch(folder, stored, keys.full)
        checked.add(str(folder))

    def _mismatch(self, folder: Path, stored: Any, current: Any) -> CacheMismatchError:
        changes = _differences(stored, current, "")
        shown = "; ".join(changes[:5]) or "(unreadable stored config)"
        return CacheMismatchError(
            f"{self._where()}: the cache folder {folder} was computed for another configuration "
            f"with the same uid ({shown}). A default value of the class probably changed. "
            "Delete the folder (infra.clear_job() or rm -r) or bump the infra version, e.g. "
            "TaskInfra(version='2')."
        )

    def _mismatch_from_folder(self, folder: Path, keys: Keys) -> CacheMismatchError:
        try:
            stored = read_json(folder / FULL_UID_CONFIG)
        except (FileNotFoundError, CorruptFileError):
            stored = None
        return self._mismatch(folder, stored, keys.full)

    # --- other objects ---------------------------------------------------------------------

    def clone_obj(self, *updates: dict[str, Any], **kwargs: Any) -> Any:
        """A deep copy of the owner with `updates` applied (dotted keys reach nested fields).

        The clone shares no mutable value with the owner, whatever the container type (an
        `Any` value or an `OrderedDict` is not copied by pydantic's validation). Raises
        `InfraConfigError` naming the field whose value cannot be deep-copied.
        """
        owner = self._runtime().owner
        changes: dict[str, Any] = {}
        for update in updates:
            changes.update(update)
        changes.update(kwargs)
        data = {name: owner.__dict__[name] for name in owner.model_fields_set}
        for field in infra_fields(type(owner)):
            data[field] = dict(owner.__dict__[field].__dict__)
        for key, value in changes.items():
            _set_dotted(owner, data, key.split("."), value)
        return type(owner)(**{name: _deep_copy(name, value) for name, value in data.items()})

    def iter_cached(self) -> Iterator[Any]:
        """Objects of this class whose results are in the method folder (rebuilt from
        their config.json, with this object's infra settings)."""
        folder = self.method_folder()
        if folder is None or not folder.is_dir():
            return
        runtime = self._runtime()
        cls = type(runtime.owner)
        settings = {k: v for k, v in self.__dict__.items() if k != "version"}
        for sub in sorted(folder.iterdir()):
            if not self._has_results(sub):
                continue
            try:
                config = read_json(sub / CONFIG)
            except (FileNotFoundError, CorruptFileError) as exc:
                logger.warning("etude: skipping %s in iter_cached: %s", sub, exc)
                continue
            if not isinstance(config, dict) or "__unserializable__" in config:
                continue
            infra = config.get(runtime.field) or {}
            config[runtime.field] = {**settings, **infra}
            yield cls(**config)

    def _has_results(self, folder: Path) -> bool:
        raise NotImplementedError


def _whole_config(owner: pydantic.BaseModel) -> dict[str, Any]:
    """The owner's config as JSON (infra fields reduced to their version)."""
    fields = infra_fields(type(owner))
    try:
        config = owner.model_dump(mode="json", exclude=set(fields))
    except Exception as exc:  # a field of a type pydantic cannot write as JSON
        logger.debug("etude: config.json of %s not written: %s", type(owner).__qualname__, exc)
        return {"__unserializable__": f"{type(exc).__name__}: {exc}"}
    for field in fields:
        config[field] = {"version": owner.__dict__[field].version}
    return config


def _deep_copy(name: str, value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception as exc:  # an object that refuses copying (a lock, an open file...)
        raise InfraConfigError(
            f"clone_obj: the value of field {name!r} cannot be deep-copied "
            f"({type(exc).__name__}: {exc}). Give the clone another value, e.g. "
            f"clone_obj({{{name!r}: ...}}), or make the value copyable."
        ) from exc


def _set_dotted(owner: Any, data: dict[str, Any], parts: list[str], value: Any) -> None:
    name = parts[0]
    if len(parts) == 1:
        data[name] = value
        return
    current = data.get(name, getattr(owner, name, None) if owner is not None else None)
    if isinstance(current, pydantic.BaseModel):
        current = dict(current.__dict__)
    if not isinstance(current, dict):
        raise InfraConfigError(
            f"clone_obj: {'.'.join(parts)!r}: {name!r} is not a nested model or dict, so "
            f"{parts[1]!r} cannot be set inside it."
        )
    data[name] = current = dict(current)
    _set_dotted(None, current, parts[1:], value)


def _differences(stored: Any, current: Any, prefix: str) -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        found: list[str] = []
        for key in sorted(set(stored) | set(current)):
            if stored.get(key, "<absent>") != current.get(key, "<absent>"):
                found += _differences(
                    stored.get(key, "<absent>"), current.get(key, "<absent>"), f"{prefix}{key}."
                )
        return found
    return [f"{prefix.rstrip('.')}: {stored!r} cached, {current!r} now"]
