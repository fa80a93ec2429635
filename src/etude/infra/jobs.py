"""Jobs of the infra: what `infra.job()` returns, and how computations reach a process.

A job is a folder (see `base.py`) plus, when this process started it, the launched process.
Its state is read from the folder's markers, so a job started by another process (or an
earlier run) is followed the same way. Job processes run `python -m etude.infra
FOLDER...` and take each folder's lock themselves (no inherited descriptor: this works on a
cluster node as well as here).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..launchers import DirectLauncher, LaunchedJob, Launcher, LaunchRequest, SlurmLauncher
from ..workspace import JobDir, is_locked, read_status
from . import pickling, worker
from .errors import InfraConfigError, JobError, SubmitError
from .results import (
    RETRY_HINT,
    archive_failure,
    failure_error,
    payload_path,
    read_failure,
    write_json_quick,
)
from .workdir import make_copy

if TYPE_CHECKING:
    from .base import BaseInfra

logger = logging.getLogger("etude.infra")

COMPLETED, RUNNING, FAILED, NOT_SUBMITTED = "completed", "running", "failed", "not submitted"


class Job:
    """A computation started (or found) by the infra. `result()` blocks until it ends."""

    folder: Path | None = None

    def done(self) -> bool:
        return self.status() != RUNNING

    def status(self) -> str:
        raise NotImplementedError

    def result(self, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> None:
        """Block until the job ends; `TimeoutError` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while not self.done():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.folder} still running after {timeout} s")
            time.sleep(pause)  # polling the folder: markers are the only shared state
            pause = min(pause * 1.5, 0.1)

    def cancel(self) -> None:
        """Stop the job if it runs (SIGTERM for local processes, scancel on Slurm)."""

    def stdout(self) -> str | None:
        return _read_log(self.folder, "job.out")

    def stderr(self) -> str | None:
        return _read_log(self.folder, "job.err")

    @property
    def job_id(self) -> str | None:
        return None


def _read_log(folder: Path | None, name: str) -> str | None:
    if folder is None:
        return None
    try:
        return (folder / name).read_text(errors="replace")
    except FileNotFoundError:
        return None


class FinishedJob(Job):
    """A computation that ran in this process: its value, or the exception it raised."""

    def __init__(
        self, value: Any = None, error: BaseException | None = None, folder: Path | None = None
    ):
        self.value = value
        self.error = error
        self.folder = folder

    def status(self) -> str:
        return FAILED if self.error is not None else COMPLETED

    def result(self, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class FolderJob(Job):
    """A computation followed through its job folder (and its process, if started here)."""

    def __init__(
        self,
        job: JobDir,
        loader: Callable[[], Any],
        what: str,
        launched: LaunchedJob | None = None,
        error: BaseException | None = None,
        hint: str = RETRY_HINT,
    ) -> None:
        self.job = job
        self.folder = job.path
        self.loader = loader
        self.what = what
        self.launched = launched
        self.error = error  # the live exception of a debug run, chained to the JobError
        self.hint = hint

    def status(self) -> str:
        if self.job.done.exists():
            return COMPLETED
        if self.launched is not None:
            if self.launched.poll() is None or is_locked(self.job.lock):
                return RUNNING
            return COMPLETED if self.job.done.exists() else FAILED
        state = read_status(self.job).state
        if state == "done":
            return COMPLETED
        return RUNNING if state in ("running", "waiting") else FAILED

    def result(self, timeout: float | None = None) -> Any:
        self.wait(timeout)
        if self.job.done.exists():
            return self.loader()
        record = read_failure(self.job)
        if record is not None:
            error = failure_error(self.job, record, self.what, self.hint)
            if self.error is not None:
                error.__cause__ = self.error
            raise error
        code = self.launched.poll() if self.launched is not None else None
        said = getattr(self.launched, "outcome", None)  # the launcher's account, if any
        word = said() if said is not None else None
        why = (
            word["message"]
            if word
            else f"the job process ended (exit status {code}) without a result or a failure "
            "record (killed, out of memory?)"
        )
        raise JobError(
            f"{self.what}: {why}. See {self.job.stderr} and {self.job.stdout}.",
            folder=str(self.job.path),
        )

    def cancel(self) -> None:
        if self.launched is not None and self.launched.poll() is None:
            self.launched.terminate()

    @property
    def job_id(self) -> str | None:
        if self.launched is None:
            return None
        slurm = getattr(self.launched, "slurm_job_id", None)
        return str(slurm) if slurm is not None else str(self.launched.pid)


@dataclass
class Submission:
    """One job folder to fill: the object, and for MapInfra the items of its chunk."""

    job: JobDir
    owner: Any
    field: str
    loader: Callable[[], Any]
    what: str
    items: list[Any] | None = None
    hint: str = RETRY_HINT
    meta: dict[str, Any] | None = None


def resolve_cluster(cluster: str | None) -> str | None:
    """`auto` becomes `slurm` when a Slurm controller answers (`scontrol ping`), else `local`."""
    if cluster != "auto":
        return cluster
    from ..launchers.slurm_queue import slurm_available  # lazily: runs a command

    return "slurm" if slurm_available() else "local"


def slurm_options(infra: BaseInfra, default_name: str) -> dict[str, Any]:
    """The `SlurmLauncher` keyword arguments for the infra's resource fields."""
    options: dict[str, Any] = {"job_name": infra.job_name or default_name}
    if infra.timeout_min is not None:
        options["time"] = infra.timeout_min
    if infra.cpus_per_task is not None:
        options["cpus_per_task"] = infra.cpus_per_task
    if infra.gpus_per_node is not None:
        options["gpus"] = infra.gpus_per_node
    if infra.mem_gb is not None:
        mem = infra.mem_gb
        options["mem"] = f"{int(mem)}G" if float(mem).is_integer() else f"{round(mem * 1024)}M"
    for field, option in (
        ("slurm_partition", "partition"),
        ("slurm_account", "account"),
        ("slurm_qos", "qos"),
        ("slurm_constraint", "constraint"),
        ("nodes", "nodes"),
    ):
        value = getattr(infra, field)
        if value is not None:
            options[option] = value
    extra = []
    for key, value in (infra.slurm_additional_parameters or {}).items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            extra.append(flag)
        elif value is not False:
            extra.append(f"{flag}={value}")
    if infra.tasks_per_node is not None:
        extra.append(f"--ntasks-per-node={infra.tasks_per_node}")
    if extra:
        options["extra_options"] = extra
    if infra.slurm_setup:
        options["setup"] = list(infra.slurm_setup)
    return options


def make_launcher(infra: BaseInfra, cluster: str, default_name: str) -> Launcher:
    if cluster == "local":
        return DirectLauncher()
    if cluster == "slurm":
        return SlurmLauncher(**slurm_options(infra, default_name))
    raise InfraConfigError(
        f"cluster={cluster!r} is not valid; use None, 'debug', 'local', 'slurm' or 'auto'."
    )


def submit(
    infra: BaseInfra, subs: list[Submission], *, max_workers: int | None = None
) -> list[Job]:
    """Start one job per submission; local jobs share at most `max_workers` processes."""
    cluster = resolve_cluster(infra.cluster)
    if not subs:
        return []
    method_folder = infra.method_folder()
    assert method_folder is not None and cluster is not None
    if cluster != "debug":  # "debug" reads the payload in this process
        pickling.check_script_readable(subs[0].owner, subs[0].items, f"cluster={cluster!r}")
    sys_path = _write_payloads(infra, subs, cluster, method_folder)
    for sub in subs:
        infra._share_job(sub.job)  # `permissions`: payloads and parameters just written
    if cluster == "debug":
        jobs: list[Job] = []
        for sub in subs:
            error = worker.run_folder(sub.job.path, in_job_process=False)
            jobs.append(FolderJob(sub.job, sub.loader, sub.what, error=error, hint=sub.hint))
        return jobs
    name = subs[0].what
    launcher = make_launcher(infra, cluster, name)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sys_path)
    if cluster == "local":
        return _launch_local(launcher, subs, env, max_workers)
    requests = [_request(sub.job, [sub.job], env) for sub in subs]
    launched = launcher.launch_many(requests)  # Slurm: one job array
    jobs = []
    refused: list[tuple[Submission, BaseException]] = []
    for sub, handle in zip(subs, launched, strict=True):
        if isinstance(handle, BaseException):  # not a result: nothing is kept of it
            refused.append((sub, handle))
            continue
        _record_scheduled(sub.job, handle, cluster)
        jobs.append(FolderJob(sub.job, sub.loader, sub.what, launched=handle, hint=sub.hint))
    if refused:
        sub, error = refused[0]
        raise SubmitError(
            f"{sub.what}: {len(refused)} of {len(subs)} jobs could not be submitted to "
            f"{cluster}; nothing was recorded for them, so calling again submits them again "
            f"(the {len(subs) - len(refused)} others run). The first error: {error}"
        ) from error
    return jobs


def _write_payloads(
    infra: BaseInfra, subs: list[Submission], cluster: str, method_folder: Path
) -> list[str]:
    """Write each job's payload (after a workdir copy, if any); return the job's sys.path."""
    sys_path = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    main = pickling.main_file()
    cwd = os.getcwd()
    if infra.workdir is not None and infra.workdir.copied and cluster != "debug":
        copy = make_copy(infra.workdir, method_folder / "code")
        sys_path, cwd = copy.sys_path(sys_path), str(copy.root)
        main = copy.map_path(main) if main else None
    for sub in subs:
        archive_failure(sub.job)
        sub.job.done.unlink(missing_ok=True)
        sub.meta = {**(sub.meta or {}), "cwd": cwd}
        _write_params(sub, method_folder)
        pickling.write_payload(
            payload_path(sub.job),
            owner=sub.owner,
            field=sub.field,
            items=sub.items,
            sys_path=sys_path,
            main_file=main,
            meta=sub.meta,
        )
    return sys_path


def _request(first: JobDir, folders: list[JobDir], env: dict[str, str]) -> LaunchRequest:
    """The job process starts in the first job folder; the worker then moves to the
    submitter's working directory (or the workdir copy), recorded in the payload."""
    argv = [sys.executable, "-m", "etude.infra", *(str(f.path) for f in folders)]
    return LaunchRequest(
        job_id=first.path.name,
        cwd=first.path,
        argv=argv,
        env=env,
        stdout=first.stdout,
        stderr=first.stderr,
    )


def _launch_local(
    launcher: Launcher,
    subs: list[Submission],
    env: dict[str, str],
    max_workers: int | None,
) -> list[Job]:
    count = min(len(subs), max_workers or os.cpu_count() or 1)
    groups = [subs[i::count] for i in range(count)]
    jobs: dict[int, Job] = {}
    for group in groups:
        handle = launcher.launch(_request(group[0].job, [s.job for s in group], env))
        for sub in group:
            _record_scheduled(sub.job, handle, "local")
            jobs[id(sub)] = FolderJob(sub.job, sub.loader, sub.what, launched=handle, hint=sub.hint)
    return [jobs[id(sub)] for sub in subs]


def _write_params(sub: Submission, method_folder: Path) -> None:
    """`.etude/params.json`, as etude's own jobs have: `etude jobs list` shows the job."""
    params = {
        "type": method_folder.name.split(",")[0],
        "id": sub.job.path.name,
        "tags": {},
        "infra": {"what": sub.what, "items": None if sub.items is None else len(sub.items)},
    }
    write_json_quick(sub.job.params, params)


def _record_scheduled(job: JobDir, handle: LaunchedJob, cluster: str) -> None:
    record: dict[str, Any] = {"submitted": time.time(), "cluster": cluster}
    slurm = getattr(handle, "slurm_job_id", None)
    if slurm is not None:
        record.update(host=f"slurm:{slurm}", slurm_job_id=str(slurm))
    else:
        record.update(pid=handle.pid, host=socket.gethostname())
        try:
            import psutil  # lazily: tells a reused pid apart from the job's

            record["create_time"] = psutil.Process(handle.pid).create_time()
        except Exception as exc:  # the process may already be gone: the pid is enough
            logger.debug("etude: no create time for pid %s: %s", handle.pid, exc)
    write_json_quick(job.scheduled, record)
