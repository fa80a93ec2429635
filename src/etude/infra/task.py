"""`TaskInfra`: cache (and optionally run as a job) a method that takes no argument but self."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

import pydantic

from ..config.naming import ScriptLoadStop, loading_script
from ..workspace import FileLock, JobDir, read_status
from .base import POOLS, RAM, BaseInfra, Keys, logger
from .errors import DuplicateConfigError, InfraConfigError, ReadOnlyError
from .jobs import (
    COMPLETED,
    FAILED,
    NOT_SUBMITTED,
    RUNNING,
    FinishedJob,
    FolderJob,
    Job,
    Submission,
    resolve_cluster,
    submit,
)
from .method import ExclusionOption, InfraMethod
from .pickling import check_script_readable
from .results import (
    Mismatch,
    archive_failure,
    failure_error,
    has_result,
    job_dir,
    load_result,
    process_record,
    read_failure,
    store_failure,
    store_result,
    write_json_quick,
)

F = TypeVar("F", bound=Callable[..., Any])
LOAD, FAIL, COMPUTE = "load", "fail", "compute"

#: Job processes started by this process, by uid folder, so that two objects with one uid share
#: a running job instead of starting a second one.
_LIVE: weakref.WeakValueDictionary[str, Job] = weakref.WeakValueDictionary()


class TaskInfra(BaseInfra):
    """Caches the result of one method per uid, and runs it in this process or as a job.

    Declare it as a field of a pydantic model and decorate a method without arguments with
    `@infra.apply`; see docs/pydantic-infra.md.
    """

    @pydantic.field_validator("cluster", mode="after")
    @classmethod
    def _no_pool(cls, cluster: str | None) -> str | None:
        if cluster in POOLS:
            raise ValueError(
                f"cluster={cluster!r} spreads the items of a MapInfra over workers of this "
                "process; a TaskInfra computes one result: use None, 'debug', 'local', "
                "'slurm' or 'auto'"
            )
        return cluster

    @overload
    def apply(self, method: F, /) -> F: ...

    @overload
    def apply(self, *, exclude_from_cache_uid: ExclusionOption = None) -> Callable[[F], F]: ...

    def apply(
        self,
        method: Callable[..., Any] | None = None,
        *,
        exclude_from_cache_uid: ExclusionOption = None,
    ) -> Any:
        """Decorate the method whose result this infra caches (with or without arguments)."""

        def decorate(func: Callable[..., Any]) -> Any:
            self._mark_applied(getattr(func, "__qualname__", repr(func)))
            return InfraMethod(
                self, func, arguments=0, exclude_from_cache_uid=exclude_from_cache_uid
            )

        return decorate if method is None else decorate(method)

    # --- calls -----------------------------------------------------------------------------

    def _call(self) -> Any:
        """The decorated method's call: the cached result, or a computation."""
        if loading_script():
            raise ScriptLoadStop()  # a job process is loading the script for its classes
        keys = self._keys()
        runtime = self._rt
        assert runtime is not None
        results = runtime.results
        if keys.uid in results:
            return results[keys.uid]
        if not self.keep_in_ram:
            return self._fetch(keys)
        key = self._ram_key(keys)
        forcing = self.mode == "force" and keys.uid not in runtime.forced
        if key in RAM and not forcing:
            results[keys.uid] = RAM[key]
        else:
            RAM[key] = self._fetch(keys)
        return RAM[key]

    def _fetch(self, keys: Keys) -> Any:
        """The result read from the folder, or computed."""
        results = self._runtime().results
        if self.folder is not None and self.mode != "force":
            folder = f"{self._method_folder()}/{keys.uid}"
            try:
                value = load_result(folder, keys.full_digest)
            except FileNotFoundError:
                pass
            except Mismatch:
                raise self._mismatch_from_folder(Path(folder), keys) from None
            else:
                results[keys.uid] = value
                return value
        return self._job(keys).result()

    def job(self) -> Job:
        """The job computing this object's result: started if needed, never waited for."""
        if loading_script():
            raise ScriptLoadStop()
        return self._job(self._keys())

    def _job(self, keys: Keys) -> Job:
        runtime = self._runtime()
        job = runtime.jobs.get(keys.uid)
        if job is not None:
            return job
        if self.folder is None:
            job = self._compute_in_memory(keys)
        else:
            folder = f"{self._method_folder()}/{keys.uid}"
            live = _LIVE.get(folder)
            job = (
                live if live is not None and not live.done() else self._start(keys, job_dir(folder))
            )
            if isinstance(job, FolderJob) and job.launched is not None:
                _LIVE[folder] = job  # a process runs it: other objects follow this one
        if job.status() != FAILED or self.folder is not None:
            runtime.jobs[keys.uid] = job
        return job

    def _compute_in_memory(self, keys: Keys) -> Job:
        if self.cluster is not None:
            raise InfraConfigError(
                f"{self._where()}: cluster={self.cluster!r} needs a folder to exchange the job "
                "with its process. Set infra={'folder': ...} (or cluster=None)."
            )
        if self.mode == "read-only":
            raise self._missing(keys, None)
        runtime = self._runtime()
        owner = runtime.owner
        try:
            value = runtime.get_method().func(owner)
        except Exception as exc:
            return FinishedJob(error=exc)
        runtime.results[keys.uid] = value
        return FinishedJob(value)

    def _decide(self, keys: Keys, job: JobDir) -> str:
        """What to do for this uid given the mode and what the folder holds."""
        if self.mode == "force" and keys.uid not in self._runtime().forced:
            return COMPUTE
        if has_result(job.path):
            return LOAD
        if read_failure(job) is not None:
            return COMPUTE if self.mode in ("retry", "force") else FAIL
        if self.mode == "read-only":
            raise self._missing(keys, job.path)
        return COMPUTE

    def _start(self, keys: Keys, job: JobDir) -> Job:
        what = self._where()
        action = self._decide(keys, job)
        if action == LOAD:
            return FolderJob(job, lambda: self._load(keys, job), what)
        if action == FAIL:
            return FolderJob(job, lambda: None, what)
        cluster = resolve_cluster(self.cluster)
        if cluster not in (None, "debug"):  # before the folder is made: nothing to clean
            check_script_readable(self._runtime().owner, None, f"cluster={cluster!r}")
        self._prepare_folder(keys, rewrite=self.mode == "force")
        self._runtime().forced.add(keys.uid)
        if cluster is None:
            return self._compute_here(keys, job)
        state = FolderJob(job, lambda: self._load(keys, job), what).status()
        if state == RUNNING and self.mode != "force":
            logger.info("etude: %s is computed by another process; following it", job.path)
            return FolderJob(job, lambda: self._load(keys, job), what)
        if self.mode == "force":
            (job.path / "result.pkl").unlink(missing_ok=True)
        sub = self._submission(keys, job)
        return submit(self, [sub])[0]

    def _submission(self, keys: Keys, job: JobDir) -> Submission:
        runtime = self._runtime()
        return Submission(
            job=job,
            owner=runtime.owner,
            field=runtime.field,
            loader=lambda: self._load(keys, job),
            what=self._where(),
            meta={"full_digest": keys.full_digest},
        )

    def _load(self, keys: Keys, job: JobDir) -> Any:
        results = self._runtime().results
        if keys.uid not in results:
            try:
                results[keys.uid] = load_result(str(job.path), keys.full_digest)
            except Mismatch:
                raise self._mismatch_from_folder(job.path, keys) from None
        return results[keys.uid]

    def _compute_here(self, keys: Keys, job: JobDir) -> Job:
        """Compute in this process under the job lock (another process may hold it: wait)."""
        with FileLock(job.lock):
            force = self.mode == "force"
            if not force:
                action = self._decide(keys, job)
                if action == LOAD:
                    return FinishedJob(self._load(keys, job), folder=job.path)
                if action == FAIL:
                    record = read_failure(job) or {}
                    return FinishedJob(error=failure_error(job, record, self._where()))
            archive_failure(job)
            started = time.time()
            write_json_quick(job.process, process_record())
            runtime = self._runtime()
            try:
                value = runtime.get_method().func(runtime.owner)
            except Exception as exc:
                store_failure(job, exc, started)
                self._share(job.path)
                return FinishedJob(error=exc, folder=job.path)
            store_result(job, value, keys.full_digest, started)
            self._share(job.path)
        runtime.results[keys.uid] = value
        return FinishedJob(value, folder=job.path)

    def _run_job(self, job: JobDir, items: Any, meta: dict[str, Any], started: float) -> None:
        """In the job process (lock held): compute and store the result in `job`."""
        runtime = self._runtime()
        value = runtime.get_method().func(runtime.owner)
        digest = meta.get("full_digest") or self._keys().full_digest
        store_result(job, value, digest, started)

    def _missing(self, keys: Keys, folder: Path | None) -> ReadOnlyError:
        where = f"in {folder}" if folder is not None else "in memory (no folder set)"
        return ReadOnlyError(
            f"{self._where()}: no cached result for uid {keys.uid} {where}, and infra.mode is "
            "'read-only'. Compute it first with mode='cached', or check folder and version."
        )

    # --- state and folders -----------------------------------------------------------------

    def status(self) -> str:
        """`not submitted`, `running`, `completed` or `failed`."""
        keys = self._keys()
        runtime = self._runtime()
        if keys.uid in runtime.results:
            return COMPLETED
        job = runtime.jobs.get(keys.uid)
        if self.folder is None:
            return job.status() if job is not None else NOT_SUBMITTED
        folder = f"{self._method_folder()}/{keys.uid}"
        live = _LIVE.get(folder)
        job = job or (live if live is not None and not live.done() else None)
        if job is not None:
            return job.status()
        jobdir = job_dir(folder)
        if has_result(jobdir.path):
            return COMPLETED
        state = read_status(jobdir).state
        if state == "done":
            return COMPLETED
        if state in ("running", "waiting"):
            return RUNNING
        return FAILED if state == "error" else NOT_SUBMITTED

    def clear_job(self) -> None:
        """Forget this uid's result or failure (in memory and in the folder)."""
        keys = self._keys()
        runtime = self._runtime()
        runtime.results.pop(keys.uid, None)
        runtime.jobs.pop(keys.uid, None)
        runtime.forced.discard(keys.uid)
        RAM.pop(self._ram_key(keys), None)
        if self.folder is None:
            return
        folder = f"{self._method_folder()}/{keys.uid}"
        _LIVE.pop(folder, None)
        job = job_dir(folder)
        for path in (job.path / "result.pkl", job.done, job.process, job.scheduled):
            path.unlink(missing_ok=True)
        archive_failure(job)

    def _has_results(self, folder: Path) -> bool:
        return has_result(folder)

    @contextmanager
    def job_array(self, max_workers: int | None = None) -> Iterator[list[Any]]:
        """Collect objects (`clone_obj`) in the yielded list; on exit, start the jobs of those
        not computed yet (honouring `mode`), locally or as one Slurm array, without waiting.

        Local jobs share at most `max_workers` processes (default: the number of CPUs).
        """
        if loading_script():
            raise ScriptLoadStop()
        array: list[Any] = []
        yield array
        submit_array(self, array, max_workers)


def submit_array(infra: TaskInfra, array: list[Any], max_workers: int | None) -> None:
    """Start what the objects of `array` need, as one submission.

    Raises `DuplicateConfigError`, before starting anything, if two objects share a uid.
    """
    pending: list[tuple[TaskInfra, Keys, JobDir]] = []
    for other, keys in _array_keys(infra, array):
        cluster = resolve_cluster(other.cluster)
        if other.folder is None or cluster is None:
            other._job(keys)  # computed here, now
            continue
        folder = f"{other._method_folder()}/{keys.uid}"
        job = job_dir(folder)
        live = _LIVE.get(folder)
        if keys.uid in other._runtime().jobs or (live is not None and not live.done()):
            continue
        action = other._decide(keys, job)
        if action != "compute":
            other._job(keys)
            continue
        other._prepare_folder(keys, rewrite=other.mode == "force")
        other._runtime().forced.add(keys.uid)
        pending.append((other, keys, job))
    if not pending:
        return
    for other, _, job in pending:
        if other.mode == "force":
            (job.path / "result.pkl").unlink(missing_ok=True)
    subs = [other._submission(keys, job) for other, keys, job in pending]
    for (other, keys, job), started in zip(
        pending, submit(infra, subs, max_workers=max_workers), strict=True
    ):
        other._runtime().jobs[keys.uid] = started
        _LIVE[str(job.path)] = started
        logger.debug("etude: submitted %s", job.path)


def _array_keys(infra: TaskInfra, array: list[Any]) -> list[tuple[TaskInfra, Keys]]:
    """The infra and keys of each object of a job array, checked: one class, distinct uids."""
    runtime = infra._runtime()
    owner_cls, field = type(runtime.owner), runtime.field
    found: list[tuple[TaskInfra, Keys]] = []
    seen: dict[str, int] = {}
    for index, obj in enumerate(array):
        if type(obj) is not owner_cls:
            raise TypeError(
                f"job_array: got a {type(obj).__qualname__}, expected {owner_cls.__qualname__} "
                "objects (make them with infra.clone_obj({...}))."
            )
        other: TaskInfra = obj.__dict__[field]
        keys = other._keys()
        if keys.uid in seen:
            raise DuplicateConfigError(
                f"job_array of {infra._where()}: objects {seen[keys.uid]} and {index} have the "
                f"same uid {keys.uid}, so one job would compute both. Append each "
                "configuration once (values left out of the uid do not make them differ)."
            )
        seen[keys.uid] = index
        found.append((other, keys))
    return found
