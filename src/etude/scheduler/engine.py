"""The scheduler thread: starts jobs whose dependencies are done, follows them to the end.

Every job folder has a lock (see `etude.workspace.locks`). To run a job the scheduler takes the
lock and hands the same descriptor to the job process, so the lock is held exactly while the job
runs, whichever process dies first. A job whose lock is held elsewhere is running in another
experiment process: it is polled until the lock is free, then its markers say how it ended.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import queue
import shutil
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from ..config import ResumableTask
from ..config.runtime import LOCK_FD_ENV
from ..launchers import LaunchedJob, Launcher, LaunchRequest
from ..workspace import FileLock, check_done, read_json, write_json_atomic
from ..workspace.atomic import CorruptFileError
from ..workspace.tokens import release_units, take_units
from .job import DONE, ERROR, FINAL, RUNNING, WAITING, Job

logger = logging.getLogger("etude.scheduler")

POLL_INTERVAL = 0.2  # seconds between checks of jobs held by another process


class Reporter(Protocol):
    def job_changed(self, job: Job) -> None: ...


class Scheduler:
    """Runs the jobs of one experiment. Thread-safe: `add()` may be called from any thread."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.jobs: list[Job] = []
        self.callback_errors: list[str] = []
        self._cond = threading.Condition()
        self._pending: list[Job] = []
        self._elsewhere: list[Job] = []
        self._running_jobs: set[Job] = set()
        self._dirty: set[Job] = set()  # jobs given a new output watcher
        self._exited: list[tuple[Job, int]] = []
        self._running: dict[int, int] = {}
        self._callbacks: queue.SimpleQueue[tuple[Job, Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._callbacks_pending = 0
        self._stopping = False
        self._accepting = True
        self._context: contextvars.Context | None = None
        self._threads: list[threading.Thread] = []
        self._last_add = 0.0  # when the latest job was submitted (for batching launchers)
        self._hold_until = 0.0  # a batching launcher's jobs wait for submissions to pause

    # -- public -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler and callback threads; callbacks run in the caller's context."""
        self._context = contextvars.copy_context()
        for target, name in (
            (self._loop, "etude-scheduler"),
            (self._run_callbacks, "etude-callbacks"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def add(self, job: Job) -> None:
        with self._cond:
            self._last_add = time.monotonic()
            job.on_new_watcher = self._new_watcher
            self.jobs.append(job)
            if job.state in FINAL:
                self._finish(job, job.state, job.reason, job.message)
            else:
                self._pending.append(job)
            self._cond.notify_all()

    def _idle(self) -> bool:
        return (
            not self._exited
            and not self._dirty
            and self._callbacks_pending == 0
            and all(job.state in FINAL for job in self.jobs)
        )

    def _new_watcher(self, job: Job) -> None:
        with self._cond:
            self._dirty.add(job)
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until idle (or `timeout`); return whether it is idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._idle():
                remaining = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def stop_scheduling(self) -> None:
        """Start no new job (running ones go on)."""
        with self._cond:
            self._accepting = False
            self._cond.notify_all()

    def terminate_running(self) -> None:
        """Send SIGTERM to the jobs this scheduler started and that still run."""
        with self._cond:
            running = [job for job in self.jobs if job.state == RUNNING and job.process]
        for job in running:
            assert job.process is not None
            try:
                job.process.terminate()
            except ProcessLookupError:
                pass

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._callbacks.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        next_poll = 0.0
        with self._cond:
            while not self._stopping:
                try:
                    self._handle_exits()
                    now = time.monotonic()
                    if now >= next_poll:
                        self._poll_elsewhere()
                        for job in self._running_jobs | self._dirty:
                            self._drain_outputs(job)
                        self._dirty.clear()
                        next_poll = now + POLL_INTERVAL
                    if self._accepting:
                        self._schedule()
                except Exception:  # keep scheduling the other jobs; this one is reported
                    logger.exception("etude scheduler: unexpected error")
                timeout = POLL_INTERVAL if self._needs_polling() else 1.0
                held = self._hold_until - time.monotonic()
                self._cond.wait(max(0.01, min(timeout, held)) if held > 0 else timeout)

    def _needs_polling(self) -> bool:
        # A job waiting for tokens may get them when another experiment's job ends.
        return (
            bool(self._elsewhere or self._dirty)
            or any(job.output_watchers for job in self._running_jobs)
            or any(job.tokens for job in self._pending)
        )

    def _schedule(self) -> None:
        waiting: list[Job] = []
        ready: dict[int, list[tuple[Job, FileLock]]] = {}
        now = time.monotonic()
        for job in self._pending:
            failed = next((d for d in job.dependencies if d.state == ERROR), None)
            if failed is not None:
                self._fail_dependency(job, failed)
            elif (
                self._held(job, now)
                or any(d.state != DONE for d in job.dependencies)
                or self._running.get(id(job.launcher), 0) + len(ready.get(id(job.launcher), ()))
                >= job.launcher.max_jobs
                or not job.launcher.reserve(job.id, job.requirements)  # e.g. GPUs all taken
            ):
                waiting.append(job)
            elif not self._take_tokens(job):
                job.launcher.release(job.id)
                waiting.append(job)
            else:
                lock = self._claim(job)
                if lock is not None:
                    ready.setdefault(id(job.launcher), []).append((job, lock))
                else:
                    job.launcher.release(job.id)
                    _release_tokens(job)
        self._pending = waiting
        for claimed in ready.values():  # jobs ready together go to their launcher together
            self._launch(claimed)

    def _take_tokens(self, job: Job) -> bool:
        """Take the token units `job` needs, all or none; whether it now holds them."""
        workspace = job.path.parents[2]  # WORKSPACE/jobs/NAME/ID
        for token, count in job.tokens:
            locks = take_units(workspace, token.name, token.size, count)
            if locks is None:
                _release_tokens(job)
                return False
            job.token_locks.extend(locks)
        return True

    def _held(self, job: Job, now: float) -> bool:
        """Whether `job` waits for submissions to pause, so that its launcher gets a batch."""
        window = job.launcher.batch_window
        if window <= 0 or now - self._last_add >= window:
            return False
        self._hold_until = self._last_add + window
        return True

    def _claim(self, job: Job) -> FileLock | None:
        """Take `job`'s lock to launch it; None when it ended, runs elsewhere or was re-attached."""
        lock = FileLock(job.dir.lock)
        if not lock.try_acquire():
            if not self._reattach(job):
                if not job.elsewhere:
                    job.elsewhere = True
                    self.reporter.job_changed(job)
                self._elsewhere.append(job)
            return None
        if self._adopt_outcome(job, lock) or self._reattach(job):
            lock.release()
            return None
        return lock

    def _reattach(self, job: Job) -> bool:
        """Follow the job again if its launcher still runs it (a Slurm job of a dead experiment)."""
        if type(job.launcher).reattach is Launcher.reattach:
            return False  # this launcher cannot follow jobs of other processes
        record = _read_record(job.dir.process)
        if record is None or record.get("launcher") != job.launcher.describe().get("launcher"):
            return False
        process = job.launcher.reattach(record)
        if process is None:
            return False
        job.started_at = float(record.get("started") or time.time())
        self._follow(job, process)
        return True

    def _adopt_outcome(self, job: Job, lock: FileLock) -> bool:
        """With the lock held: finish `job` if it ended (done, or failed since we submitted)."""
        if check_done(job.dir):
            job.reused = True
            self._finish(job, DONE)
            return True
        record = _read_record(job.dir.failed)
        if record is not None and os.path.getmtime(job.dir.failed) >= job.submitted_at:
            self._finish(job, ERROR, str(record.get("reason", "error")), record.get("message"))
            return True
        return False

    def _poll_elsewhere(self) -> None:
        still: list[Job] = []
        for job in self._elsewhere:
            lock = FileLock(job.dir.lock)
            if not lock.try_acquire():
                still.append(job)
                continue
            if not self._adopt_outcome(job, lock):
                # The other process died without an outcome: run the job here.
                job.elsewhere = False
                self._pending.append(job)
            lock.release()
        self._elsewhere = still

    def _launch(self, claimed: list[tuple[Job, FileLock]]) -> None:
        """Start jobs of one launcher whose locks are held; each job then holds its own lock."""
        launcher = claimed[0][0].launcher
        requests = [self._request(job, lock) for job, lock in claimed]
        try:
            results = launcher.launch_many(requests)
        except OSError as exc:
            results = [exc] * len(claimed)
        for (job, lock), result in zip(claimed, results, strict=True):
            if isinstance(result, OSError):
                message = f"cannot start the job: {result}"
                write_json_atomic(job.dir.failed, _failure("error", message))
                lock.release()
                _release_tokens(job)
                self._finish(job, ERROR, "error", message)
                continue
            job.started_at = time.time()
            write_json_atomic(job.dir.process, self._process_record(job, result))
            # A local job process holds the lock through its inherited descriptor; a remote one
            # (Slurm) takes it itself when it starts.
            lock.release()
            self._follow(job, result)

    def _request(self, job: Job, lock: FileLock) -> LaunchRequest:
        assert lock.fd is not None
        _archive(job)
        return LaunchRequest(
            job_id=job.id,
            cwd=job.path,
            argv=[sys.executable, str(job.dir.script)],
            env={**os.environ, **job.environ, LOCK_FD_ENV: str(lock.fd)},
            stdout=job.dir.stdout,
            stderr=job.dir.stderr,
            # The job process shares the token slots too: they stay taken while it runs,
            # even if this experiment ends first.
            keep_fds=(lock.fd, *(t.fd for t in job.token_locks if t.fd is not None)),
            options=dict(job.launcher_options),
            time_limit=job.requirements.duration if job.requirements else None,
            append_logs=job.retries > 0,
            workspace=job.path.parents[2],  # WORKSPACE/jobs/NAME/ID
            requirements=job.requirements,
        )

    def _process_record(self, job: Job, process: LaunchedJob) -> dict[str, Any]:
        assert job.started_at is not None
        record: dict[str, Any] = {
            "host": socket.gethostname(),
            "started": job.started_at,
            "experiment": job.experiment,  # the index's `experiment`: who launched this attempt
        }
        if process.pid:
            record["pid"] = process.pid
            record["create_time"] = _create_time(process.pid, job.started_at)
        extra = getattr(process, "record", None)
        return {**record, **(extra() if extra is not None else {}), **job.launcher.describe()}

    def _follow(self, job: Job, process: LaunchedJob) -> None:
        job.process = process
        job.state = RUNNING
        self._running_jobs.add(job)
        job.elsewhere = False
        self._running[id(job.launcher)] = self._running.get(id(job.launcher), 0) + 1
        self.reporter.job_changed(job)
        watcher = threading.Thread(target=self._watch, args=(job, process), daemon=True)
        watcher.name = f"etude-watch-{job.id[:8]}"
        watcher.start()

    def _watch(self, job: Job, process: LaunchedJob) -> None:
        status = process.wait()
        with self._cond:
            self._exited.append((job, status))
            self._cond.notify_all()

    def _handle_exits(self) -> None:
        exited, self._exited = self._exited, []
        for job, status in exited:
            self._running[id(job.launcher)] -= 1
            self._running_jobs.discard(job)
            _release_tokens(job)
            if check_done(job.dir):
                self._finish(job, DONE)
                continue
            record = self._failure_record(job, status)
            reason = str(record.get("reason", "error"))
            if reason == "timeout" and self._retry(job):
                continue
            self._finish(job, ERROR, reason, record.get("message"))

    def _failure_record(self, job: Job, status: int) -> dict[str, Any]:
        """The failure marker of an ended job, written here if the job could not write it."""
        record = _read_record(job.dir.failed)
        timed_out = bool(job.process is not None and getattr(job.process, "timed_out", False))
        said = getattr(job.process, "outcome", None)
        word: dict[str, Any] | None = said() if said is not None else None
        if word is not None:  # the launcher's account (Slurm's state) completes the record
            if record is None:
                record = _failure(**word)
            else:
                record = {**record, **{k: v for k, v in word.items() if k.startswith("slurm")}}
            write_json_atomic(job.dir.failed, record)
        if record is None:
            how = f"signal {-status}" if status < 0 else f"exit status {status}"
            if timed_out:
                message = f"stopped at its time limit ({how})"
                record = _failure("timeout", message, exit_status=status)
            else:
                message = f"the job process ended ({how}) without writing done or failed"
                record = _failure("killed", message, exit_status=status)
            write_json_atomic(job.dir.failed, record)
        elif timed_out and record.get("reason") != "timeout":
            record = {**record, "reason": "timeout", "message": "stopped at its time limit"}
            write_json_atomic(job.dir.failed, record)
        return record

    def _retry(self, job: Job) -> bool:
        """Start a timed-out resumable job again in its folder, if it has retries left."""
        if not isinstance(job.task, ResumableTask) or job.retries >= job.max_retries:
            return False
        job.retries += 1
        job.process = None
        job.state = WAITING
        _archive(job)
        self.reporter.job_changed(job)
        self._pending.append(job)
        return True

    def _fail_dependency(self, job: Job, dependency: Job) -> None:
        message = f"dependency {dependency.name} failed ({dependency.reason})"
        lock = FileLock(job.dir.lock)
        if lock.try_acquire():
            try:
                _archive(job)
                write_json_atomic(job.dir.failed, _failure("dependency", message))
            finally:
                lock.release()
        self._finish(job, ERROR, "dependency", message)

    def _drain_outputs(self, job: Job) -> None:
        """Queue callbacks for dynamic-output events that a watcher has not seen yet."""
        if not job.output_watchers:
            return
        try:
            with open(job.dir.outputs, "rb") as events:
                events.seek(job.outputs_offset)
                data = events.read()
        except FileNotFoundError:
            data = b""
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next look
        job.outputs_offset += end
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
                job.output_events.append((event["path"], event["method"], event["kwargs"]))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("%s: skipping a bad event line (%s)", job.dir.outputs, exc)
        for watcher in job.output_watchers:
            for path, method, kwargs in job.output_events[watcher.seen :]:
                if (watcher.path, watcher.method) == (path, method):
                    call = _output_callback(job, path, method, kwargs, watcher.callback)
                    self._queue_callback(job, call)
            watcher.seen = len(job.output_events)

    def _finish(
        self, job: Job, state: str, reason: str | None = None, message: str | None = None
    ) -> None:
        self._drain_outputs(job)
        job.state = state
        job.reason = reason
        job.message = message
        job.ended_at = time.time()
        self.reporter.job_changed(job)
        if state == DONE:
            job.take_callbacks(self._queue_callback)
        self._cond.notify_all()

    # -- callbacks --------------------------------------------------------------------------
    def _queue_callback(self, job: Job, callback: Callable[[], Any]) -> None:
        with self._cond:
            self._callbacks_pending += 1
        self._callbacks.put((job, callback))

    def _run_callbacks(self) -> None:
        while True:
            item = self._callbacks.get()
            if item is None:
                return
            job, callback = item
            try:
                assert self._context is not None
                self._context.copy().run(callback)
            except Exception:
                text = traceback.format_exc()
                logger.error("callback %r of job %s raised:\n%s", callback, job.name, text)
                self.callback_errors.append(f"callback of {job.name} raised:\n{text}")
            finally:
                with self._cond:
                    self._callbacks_pending -= 1
                    self._cond.notify_all()


def _output_callback(
    job: Job, path: str, method: str, kwargs: dict[str, Any], callback: Callable[[Any], Any]
) -> Callable[[], Any]:
    """The call made in the callback thread for one event: build the output, hand it over."""
    owner = job.configs[path]

    def call() -> Any:
        output = getattr(owner, method)(job.output_marker, **kwargs)
        return callback(output)

    return call


def _release_tokens(job: Job) -> None:
    release_units(job.token_locks)
    job.token_locks = []


def _create_time(pid: int, fallback: float) -> float:
    """The kernel's start time of `pid` (what `process_alive` compares), else `fallback`."""
    import psutil  # lazily: the scheduler already loaded it for its own process record

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return fallback


def _failure(reason: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"reason": reason, "message": message, "ended": time.time(), **extra}


def _read_record(path: Any) -> dict[str, Any] | None:
    try:
        record = read_json(path)
    except FileNotFoundError:
        return None
    except CorruptFileError as exc:
        logger.warning("ignoring %s", exc)
        return None
    return record if isinstance(record, dict) else None


def _archive(job: Job) -> None:
    """Move the markers of an earlier attempt to `.etude/history/` before a new one."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"  # unique per attempt
    for marker in (job.dir.failed, job.dir.process):
        if marker.exists():
            job.dir.history.mkdir(exist_ok=True)
            shutil.move(str(marker), job.dir.history / f"{stamp}-{marker.name}")
