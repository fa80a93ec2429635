"""`SlurmLauncher`: jobs submitted to a Slurm cluster with `sbatch`.

Each job folder gets `NAME.sh`, a batch script that runs the job on its own (it can be given to
`sbatch` by hand). Jobs that start together with the same options go out as one job array,
whose script runs element i's `NAME.sh`. The job process takes its job lock itself on the
node. States are followed with one batched `squeue` call per poll (see `slurm_queue`).
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ..config.runtime import DEADLINE_ENV, KILL_GRACE_ENV, LOCK_FD_ENV, LOCK_WAIT_ENV
from .base import LaunchedJob, Launcher, LaunchRequest
from .requirements import RequirementError, Requirements, parse_duration, parse_size
from .slurm_queue import (
    DEFAULT_INTERVAL,
    ENDED,
    Followed,
    hopeless,
    logger,
    outcome,
    queue_for,
    run_quietly,
)

#: Environment variable naming the seconds between `--signal` and the time limit.
SIGNAL_DELAY_ENV = "ETUDE_SLURM_SIGNAL_DELAY"
#: Seconds the job waits on the node for the experiment to let go of its lock.
LOCK_WAIT = 120
#: Variables the job must not inherit from the experiment process.
_NOT_EXPORTED = (LOCK_FD_ENV, DEADLINE_ENV)


class SlurmLaunchError(OSError):
    """sbatch refused a job or could not run; the message has Slurm's words."""


class SlurmJob(Followed):
    """A job submitted to Slurm (or found again by its id), as the scheduler follows it."""

    pid = 0  # no local process

    def __init__(
        self, launcher: SlurmLauncher, slurm_job_id: str, options: list[str] | None = None
    ) -> None:
        self.launcher = launcher
        self.slurm_job_id = slurm_job_id
        self.options = options
        self.timed_out = False
        self.state: str | None = None
        self.pending_reason = ""
        self._outcome: dict[str, Any] | None = None
        self._missing = 0
        self._ended = threading.Event()

    # -- what squeue says --------------------------------------------------------------------
    def update(self, state: str | None, reason: str) -> bool:
        if state is None:
            self._missing += 1
            if self._missing < 2:  # listed again at the next poll in the usual case
                return False
            return self._end(None)
        self._missing = 0
        self.state = state
        if state == "PENDING":
            self.pending_reason = reason
            if hopeless(reason):
                self._cancel_hopeless(reason)
                return True
            return False
        if state in ENDED:
            return self._end(state)
        return False

    def _cancel_hopeless(self, reason: str) -> None:
        self.terminate()
        self._outcome = {
            "reason": "error",
            "message": (
                f"Slurm job {self.slurm_job_id} can never start: it is pending with reason "
                f"{reason}. Check the launcher's options ({self.launcher!r}) against the "
                "cluster's limits (`scontrol show partition`); etude cancelled it."
            ),
            "slurm_state": "PENDING",
            "slurm_reason": reason,
        }
        self._ended.set()

    def _end(self, state: str | None) -> bool:
        self.state = state
        self.timed_out = state in ("TIMEOUT", "DEADLINE")
        self._outcome = {**outcome(state, self.slurm_job_id), "slurm_state": state or "UNKNOWN"}
        self._ended.set()
        return True

    # -- LaunchedJob -------------------------------------------------------------------------
    def wait(self) -> int:
        self._ended.wait()
        return 0 if self.state == "COMPLETED" else 1

    def poll(self) -> int | None:
        return (0 if self.state == "COMPLETED" else 1) if self._ended.is_set() else None

    def terminate(self) -> None:
        run_quietly(
            [self.launcher.scancel, self.slurm_job_id],
            f"cancelling Slurm job {self.slurm_job_id}",
            lambda message: _log_warning(message),
        )

    def outcome(self) -> dict[str, Any] | None:
        """Slurm's word on how the job ended (merged into the failure record), once ended."""
        return self._outcome

    def record(self) -> dict[str, Any]:
        """What the job folder's process record keeps, to find this job again."""
        found: dict[str, Any] = {"slurm_job_id": self.slurm_job_id}
        if self.options is not None:
            found["sbatch"] = self.options
        return found


def _log_warning(message: str) -> None:
    logger.warning("etude: %s", message)


class SlurmLauncher(Launcher):
    """Submits jobs to Slurm; options map to sbatch's (`None` leaves the cluster's default).

    `time` is minutes (int) or a duration (`"4h"`, `"1-12:00:00"`); a job's duration
    requirement, when stated, replaces it. `mem` is a size (`"16G"`) or megabytes (int).
    `extra_options` are raw sbatch options (`"--exclusive"`, `"--mail-type=END"`), `setup` shell
    lines run before the job (`"module load cuda"`). `signal_delay` seconds: ask Slurm to send
    SIGTERM that long before the time limit, so the task can save a checkpoint (it sees
    `TaskCancelled`; `remaining_time()` counts down to that moment). `poll_interval` bounds
    the seconds between two squeue calls (the interval backs off from the first to the second).
    Jobs submitted less than `batch_window` seconds apart wait for each other and go out as
    one job array when their options are equal, `max_array_size` jobs at most per array (keep
    it below the cluster's MaxArraySize; 1 submits each job with its own sbatch call).
    """

    def __init__(
        self,
        *,
        time: int | str | None = None,
        cpus_per_task: int | None = None,
        mem: int | str | None = None,
        gpus: int | None = None,
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        constraint: str | None = None,
        nodes: int | None = None,
        job_name: str | None = None,
        extra_options: list[str] | tuple[str, ...] = (),
        setup: list[str] | tuple[str, ...] = (),
        signal_delay: int | None = None,
        max_jobs: int = 10_000,
        batch_window: float = 0.5,
        max_array_size: int = 1000,
        poll_interval: tuple[float, float] = DEFAULT_INTERVAL,
        array_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        self.time = None if time is None else _duration(time)
        self.cpus_per_task = _positive("cpus_per_task", cpus_per_task)
        self.mem_mb = None if mem is None else _megabytes(mem)
        self.gpus = _positive("gpus", gpus)
        self.nodes = _positive("nodes", nodes)
        self.signal_delay = _positive("signal_delay", signal_delay)
        self.max_jobs = _positive("max_jobs", max_jobs) or 1
        if batch_window < 0:
            raise ValueError(f"SlurmLauncher(batch_window={batch_window!r}): must be >= 0.")
        self.batch_window = float(batch_window)
        self.max_array_size = _positive("max_array_size", max_array_size) or 1
        for name, value in (
            ("partition", partition),
            ("account", account),
            ("qos", qos),
            ("constraint", constraint),
            ("job_name", job_name),
        ):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"SlurmLauncher({name}={value!r}): expected a non-empty string.")
        self.partition, self.account, self.qos = partition, account, qos
        self.constraint, self.job_name = constraint, job_name
        self.extra_options = _options(extra_options)
        self.setup = [str(line) for line in setup]
        if not (0 < poll_interval[0] <= poll_interval[1]):
            raise ValueError(
                f"SlurmLauncher(poll_interval={poll_interval!r}): expected (min, max) seconds "
                "with 0 < min <= max, e.g. (0.5, 10)."
            )
        self.poll_interval = (float(poll_interval[0]), float(poll_interval[1]))
        self.array_folder = None if array_folder is None else Path(array_folder)
        self.sbatch, self.squeue, self.scancel = "sbatch", "squeue", "scancel"

    # -- sbatch options ----------------------------------------------------------------------
    def options(self, needs: Requirements | None = None) -> list[str]:
        """The `#SBATCH` options of a job; what `needs` states replaces the launcher's own."""
        needs = needs or Requirements()
        seconds = needs.duration if needs.duration is not None else self.time
        memory = math.ceil(needs.memory / 1024**2) if needs.memory is not None else self.mem_mb
        found: list[str] = []
        if seconds is not None:
            found.append(f"--time={max(1, math.ceil(seconds / 60))}")
        for flag, value in (
            ("--cpus-per-task", needs.cores or self.cpus_per_task),
            ("--mem", None if memory is None else f"{memory}M"),
            ("--gpus", needs.gpus or self.gpus),
            ("--partition", self.partition),
            ("--account", self.account),
            ("--qos", self.qos),
            ("--constraint", self.constraint),
            ("--nodes", self.nodes),
        ):
            if value is not None:
                found.append(f"{flag}={value}")
        if self.signal_delay:
            found.append(f"--signal=B:TERM@{self.signal_delay}")
        return found + self.extra_options

    # -- launching ---------------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> LaunchedJob:
        result = self.launch_many([request])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def launch_many(self, requests: list[LaunchRequest]) -> list[LaunchedJob | OSError]:
        """Submit the jobs; those with equal options go out as one job array."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, request in enumerate(requests):
            wanted = self.options(request.requirements) + _request_options(request)
            groups.setdefault(tuple(wanted), []).append(index)
        results: list[LaunchedJob | OSError] = [OSError("not submitted")] * len(requests)
        size = self.max_array_size
        for key, members in groups.items():
            for start in range(0, len(members), size):
                self._submit_group(requests, members[start : start + size], list(key), results)
        return results

    def _submit_group(
        self,
        requests: list[LaunchRequest],
        indexes: list[int],
        options: list[str],
        results: list[LaunchedJob | OSError],
    ) -> None:
        """Submit `requests[i]` for i in `indexes` (one sbatch call); fill in `results`."""
        chosen = [requests[i] for i in indexes]
        scripts = [self._write_script(r, options) for r in chosen]
        try:
            if len(chosen) == 1:
                ids = [self._submit(scripts[0], [])]
            else:
                ids = self._submit_array(chosen, scripts, options)
        except SlurmLaunchError as exc:
            for i in indexes:
                results[i] = exc
            return
        queue = queue_for(self.squeue, self.poll_interval)
        for i, slurm_id in zip(indexes, ids, strict=True):
            job = SlurmJob(self, slurm_id, options)
            queue.follow(job)
            results[i] = job

    def reattach(self, record: dict[str, Any]) -> LaunchedJob | None:
        """Follow the job of a process record again if Slurm still runs or queues it."""
        slurm_id = record.get("slurm_job_id")
        if not isinstance(slurm_id, str):
            return None
        queue = queue_for(self.squeue, self.poll_interval)
        try:
            state = queue.snapshot().get(slurm_id, (None, ""))[0]
            if state is None:  # the listing may predate the job: ask again
                state = queue.snapshot(max_age=0.0).get(slurm_id, (None, ""))[0]
        except OSError as exc:
            _log_warning(f"cannot check Slurm job {slurm_id}: {exc}")
            return None
        if state is None or state in ENDED:
            return None
        job = SlurmJob(self, slurm_id)
        queue.follow(job)
        return job

    def _write_script(self, request: LaunchRequest, options: list[str]) -> Path:
        path = request.stdout.with_suffix(".sh")
        name = self.job_name or f"{path.stem}-{request.job_id[:8]}"
        redirect = ">>" if request.append_logs else ">"
        lines = ["#!/bin/bash", f"#SBATCH --job-name={name}"]
        # Slurm's own log: in the job folder's .etude/; beside the streams for other
        # requests (an agent's run, whose working folder is the user's code).
        logs = request.cwd / ".etude"
        logs = logs if logs.is_dir() else request.stdout.parent
        lines += [
            f"#SBATCH --output={logs / 'slurm-%j.log'}",
            "#SBATCH --open-mode=append",
        ]
        lines += [f"#SBATCH {option}" for option in options]
        lines.append("# etude: this script runs the job; sbatch it by hand to run it again.")
        lines += self.setup
        lines += _exports(request.env)
        if self.signal_delay:
            lines.append(f"export {SIGNAL_DELAY_ENV}={self.signal_delay}")
        # The submitting experiment lets go of the job lock just after sbatch returns.
        lines.append(f"export {LOCK_WAIT_ENV}={LOCK_WAIT}")
        lines.append(f"cd {shlex.quote(str(request.cwd))}")
        command = " ".join(shlex.quote(a) for a in request.argv)  # as given: the job may chdir
        out, err = (
            shlex.quote(_relative(p, request.cwd))
            for p in (request.stdout, request.stderr)
        )
        lines.append(f"exec {command} {redirect}{out} 2{redirect}{err}")
        _write_executable(path, "\n".join(lines) + "\n")
        return path

    def _submit(self, script: Path, arguments: list[str]) -> str:
        argv = [self.sbatch, "--parsable", *arguments, str(script)]
        env = {k: v for k, v in os.environ.items() if k not in _NOT_EXPORTED}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmLaunchError(f"cannot run sbatch ({exc}); is Slurm installed here?") from exc
        if done.returncode != 0:
            raise SlurmLaunchError(
                f"sbatch refused {script}: {done.stderr.strip() or done.stdout.strip()}"
            )
        return done.stdout.strip().split(";")[0]

    def _submit_array(
        self, requests: list[LaunchRequest], scripts: list[Path], options: list[str]
    ) -> list[str]:
        folder = self._array_folder(requests[0]) / (
            time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        )
        folder.mkdir(parents=True, exist_ok=True)
        listing = folder / "jobs.txt"
        listing.write_text("".join(f"{script}\n" for script in scripts))
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={self.job_name or 'etude-array'}",
            f"#SBATCH --array=0-{len(scripts) - 1}",
            f"#SBATCH --output={folder / '%a.log'}",
            *(f"#SBATCH {option}" for option in options),
            "# etude: element i runs the job whose script is line i+1 of jobs.txt",
            f'script=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(listing))})',
            'exec bash "$script"',
        ]
        array_script = folder / "array.sh"
        _write_executable(array_script, "\n".join(lines) + "\n")
        base = self._submit(array_script, [])
        return [f"{base}_{i}" for i in range(len(scripts))]

    def _array_folder(self, request: LaunchRequest) -> Path:
        if self.array_folder is not None:
            return self.array_folder
        if request.workspace is not None:
            return Path(request.workspace) / "slurm-arrays"
        return request.cwd.parent / "slurm-arrays"

    def describe(self) -> dict[str, Any]:
        return {"launcher": "slurm", "options": self.options()}

    def __repr__(self) -> str:
        return f"SlurmLauncher({' '.join(self.options()) or 'cluster defaults'})"


def _request_options(request: LaunchRequest) -> list[str]:
    """sbatch options a submit hook added for one job (`launcher_options['sbatch']`)."""
    extra = request.options.get("sbatch", ())
    return _options(extra) if extra else []


def _exports(env: dict[str, str]) -> list[str]:
    """`export` lines for the variables the job needs beyond the submitting environment."""
    lines = []
    for key, value in sorted(env.items()):
        if key in _NOT_EXPORTED or key == KILL_GRACE_ENV or os.environ.get(key) == value:
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            lines.append(f"export {key}={shlex.quote(value)}")
    return lines


def _relative(path: str | Path, folder: Path) -> str:
    """`path` relative to `folder` when it lies inside it (scripts stay short and readable)."""
    path = Path(path)
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def _write_executable(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    temporary.write_text(text)
    temporary.chmod(0o755)
    os.replace(temporary, path)


def _duration(value: int | str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"SlurmLauncher(time={value!r}): expected minutes or e.g. '4h'.")
    if isinstance(value, int):
        seconds = float(value * 60)
    else:
        try:
            seconds = parse_duration(value)
        except RequirementError as exc:
            raise ValueError(f"SlurmLauncher(time={value!r}): {exc}") from exc
    if seconds <= 0:
        raise ValueError(f"SlurmLauncher(time={value!r}): must be positive.")
    return seconds


def _megabytes(value: int | str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"SlurmLauncher(mem={value!r}): expected megabytes or e.g. '16G'.")
    if isinstance(value, int):
        return value
    try:
        return max(1, math.ceil(parse_size(value) / 1024**2))
    except RequirementError as exc:
        raise ValueError(f"SlurmLauncher(mem={value!r}): {exc}") from exc


def _positive(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"SlurmLauncher({name}={value!r}): expected a positive integer.")
    return value


def _options(values: list[str] | tuple[str, ...] | Any) -> list[str]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValueError(
            f"SlurmLauncher(extra_options={values!r}): expected a list of sbatch options such "
            "as ['--exclusive', '--mail-type=END']."
        )
    for option in values:
        if not isinstance(option, str) or not option.startswith("-"):
            raise ValueError(
                f"SlurmLauncher(extra_options=...): {option!r} is not an sbatch option; write "
                "it as on the command line, e.g. '--exclusive' or '--mail-type=END'."
            )
    return list(values)
