"""`DirectLauncher`: job processes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config.runtime import DEADLINE_ENV, KILL_GRACE_ENV
from .base import LaunchedJob, Launcher, LaunchRequest
from .gpus import GPU, GPUPool, detect_gpus, parse_gpus
from .oom import OomWatch, oom_outcome
from .requirements import Requirements


class LocalJob:
    """A job process of this machine; `wait()` enforces the time limit.

    At the limit the job's process group gets SIGTERM (the task sees `TaskCancelled` and is
    recorded as timed out), then SIGKILL if it is still there after the grace period.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        time_limit: float | None,
        grace: float,
        gpus: tuple[int, ...] = (),
        on_end: Callable[[], None] | None = None,
    ):
        self.popen = popen
        self.pid = popen.pid
        self.time_limit = time_limit
        self.grace = grace
        self.timed_out = False
        self.gpus = gpus
        self._on_end = on_end  # frees the job's GPUs, once
        self._end_lock = threading.Lock()
        self.oom = OomWatch(self.pid)

    def wait(self) -> int:
        status = self._wait()
        self._ended()
        return status

    def _wait(self) -> int:
        if self.time_limit is None:
            return self.popen.wait()
        try:
            return self.popen.wait(timeout=self.time_limit)
        except subprocess.TimeoutExpired:
            self.timed_out = True
        self._signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.popen.wait()

    def poll(self) -> int | None:
        status = self.popen.poll()
        if status is not None:
            self._ended()
        return status

    def record(self) -> dict[str, Any]:
        """What the job folder's process record adds: the GPUs the job was given."""
        return {"gpus": list(self.gpus)} if self.gpus else {}

    def _ended(self) -> None:
        with self._end_lock:
            on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def outcome(self) -> dict[str, Any] | None:
        """How the job ended when the job could not say it: a likely OOM kill, else None."""
        return oom_outcome(self.oom, self.popen.returncode)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass


class DirectLauncher(Launcher):
    """Runs each job as a subprocess of this machine, at most `max_jobs` at a time.

    `max_jobs` defaults to the number of CPUs. A job with a duration requirement is stopped at
    its limit: SIGTERM, then SIGKILL after `kill_grace` seconds. Jobs run in their own
    session, so that they outlive an experiment process killed by a signal (a new run of the
    experiment waits for them instead of starting them twice).

    A job that requires GPUs (`gpu(mem=24G)*2`) gets its own through `CUDA_VISIBLE_DEVICES`,
    and waits until enough are free. `gpus`: the GPUs the launcher may hand out — None: all of
    the machine's (found with NVML or `nvidia-smi` when a job first needs one); a list of
    indices: only those; a mapping `{index: "24G"}`: those, with their memory, without asking
    the machine. Jobs without a GPU requirement keep the environment's `CUDA_VISIBLE_DEVICES`,
    unless `hide_gpus=True`, which sets it to "" for them.
    """

    def __init__(
        self,
        max_jobs: int | None = None,
        *,
        kill_grace: float = 10.0,
        gpus: Sequence[int] | Mapping[int, int | str] | None = None,
        hide_gpus: bool = False,
    ) -> None:
        if max_jobs is None:
            max_jobs = os.cpu_count() or 1
        if not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1:
            raise ValueError(
                f"DirectLauncher(max_jobs={max_jobs!r}): expected a positive integer, e.g. "
                "max_jobs=4."
            )
        if kill_grace < 0:
            raise ValueError(f"DirectLauncher(kill_grace={kill_grace!r}): must be >= 0 seconds.")
        self.max_jobs = max_jobs
        self.kill_grace = kill_grace
        self.hide_gpus = hide_gpus
        self._stated_gpus = parse_gpus(gpus)
        self._pool: GPUPool | None = None
        self._pool_lock = threading.Lock()

    def gpu_pool(self) -> GPUPool:
        """The launcher's GPUs, found on first use (NVML, then `nvidia-smi`) unless stated."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = GPUPool(self._find_gpus())
            return self._pool

    def _find_gpus(self) -> list[GPU]:
        stated = self._stated_gpus
        if stated is not None and all(gpu.memory is not None for gpu in stated):
            return stated
        found = {gpu.index: gpu for gpu in detect_gpus()}
        if stated is None:
            return list(found.values())
        # indices the machine does not report are kept, of unknown memory: the user knows best
        return [found.get(gpu.index, gpu) for gpu in stated]

    def reserve(self, job_id: str, requirements: Requirements | None) -> bool:
        if requirements is None or not requirements.gpus:
            return True
        pool = self.gpu_pool()
        if pool.why_never(requirements) is not None:
            return True  # `launch` fails with the reason: waiting would never end
        return pool.reserve(job_id, requirements) is not None

    def release(self, job_id: str) -> None:
        if self._pool is not None:
            self._pool.release(job_id)

    def _gpus_for(self, request: LaunchRequest) -> tuple[int, ...]:
        """The GPUs reserved for the job (reserving them now if the caller did not)."""
        needs = request.requirements
        if needs is None or not needs.gpus:
            return ()
        pool = self.gpu_pool()
        why = pool.why_never(needs)
        if why is not None:
            raise OSError(why)
        chosen = pool.reserve(request.job_id, needs)
        if chosen is None:
            raise OSError(
                f"no {needs.gpus} free GPU(s) now among {pool.describe()}; submit through an "
                "experiment, which waits for them."
            )
        return chosen

    def launch(self, request: LaunchRequest) -> LaunchedJob:
        gpus = self._gpus_for(request)
        try:
            return self._start(request, gpus)
        except OSError:
            self.release(request.job_id)
            raise

    def _start(self, request: LaunchRequest, gpus: tuple[int, ...]) -> LaunchedJob:
        env = dict(request.env)
        if gpus:
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the indices of nvidia-smi and NVML
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        elif self.hide_gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""
        env[KILL_GRACE_ENV] = str(self.kill_grace)
        if request.time_limit is not None:
            env[DEADLINE_ENV] = repr(time.time() + request.time_limit)
        else:
            env.pop(DEADLINE_ENV, None)
        mode = "ab" if request.append_logs else "wb"
        with open(request.stdout, mode) as out, open(request.stderr, mode) as err:
            popen = subprocess.Popen(
                request.argv,
                cwd=request.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=request.keep_fds,
                start_new_session=True,
                preexec_fn=_die_with_parent if request.bound_to_parent else None,
            )
        job_id = request.job_id
        on_end = (lambda: self.release(job_id)) if gpus else None
        return LocalJob(popen, request.time_limit, self.kill_grace, gpus, on_end)

    def describe(self) -> dict[str, Any]:
        return {"launcher": "direct", "max_jobs": self.max_jobs}

    def __repr__(self) -> str:
        gpus = "" if self._stated_gpus is None else f", gpus={[g.index for g in self._stated_gpus]}"
        return f"DirectLauncher(max_jobs={self.max_jobs}{gpus})"


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG),
    so a killed agent leaves no orphan runs behind. Elsewhere, nothing (documented)."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
