"""The background writer of a live run: buffered points and events, status and heartbeat.

The process that runs a run owns its `status.json`. One daemon thread per process (`_Writer`,
shared by every run the process records, so that starting a run starts no thread) wakes every
`flush_seconds` (0.5 s by default) and appends the buffered points (one chunk per series, see
`points`) and events, then, at least every second, rewrites `status.json` with the summaries of
every series and a fresh heartbeat. A new run's `run.json` and first `status.json` wait for
its first flush, `FIRST_WRITE_SECONDS` after the start (or its close, or a read of it in this
process), so that a run of a few milliseconds writes each file once. Readers mark a run
whose heartbeat is older than `HEARTBEAT_TIMEOUT` and whose process is gone as failed (reason
`killed`), so a process killed with SIGKILL loses at most what was reported since its last
flush.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ..workspace.atomic import write_all
from ..workspace.run_folder import RunFolder, dumps
from .points import (
    SeriesBuffer,
    SeriesKey,
    Summary,
    encode_chunk,
    summarize,
    truncate_damaged_tail,
)

logger = logging.getLogger("etude.tracking")
HEARTBEAT_SECONDS = 1.0
#: A new run's files are written this long after `Run.init()` (or at its close, if sooner):
#: other processes see it from then on, and a short run writes each of its files once.
FIRST_WRITE_SECONDS = 0.05


class Recorder:
    """Buffers of one run, written by the process's writer thread (`_Writer`). `lock` guards
    the buffers: the logger appends under it, a flush swaps them under it."""

    def __init__(self, folder: RunFolder, status: dict[str, Any], flush_seconds: float) -> None:
        self.folder = folder
        self.status = status
        self.flush_seconds = max(0.05, flush_seconds)
        self.lock = threading.Lock()
        self.series: dict[SeriesKey, SeriesBuffer] = {}
        self.events: list[dict[str, Any]] = []
        self.summaries: dict[SeriesKey, Summary] = {}
        self._write_lock = threading.Lock()  # one flush at a time (thread, close, flush())
        self.next_tick = 0.0  # time.monotonic() of the writer thread's next flush
        self.pid = os.getpid()  # the process that records the run
        self._last_status = 0.0
        self._failures = 0
        self._finished = False
        self._abort_sent = False
        # A new run's files wait for the first flush (the thread's, `FIRST_WRITE_SECONDS`
        # after the start, or a read's, or close's): `first_write` then writes run.json and
        # the pointer, after the first status.json (at close: with the status inside).
        self.first_write: Callable[[dict[str, Any] | None], None] | None = None
        # When points reported after this time are still unwritten, the writer thread is late
        # by a whole period: the reporting thread then writes them itself, so a SIGKILL loses
        # at most about a second of points even when the thread gets no CPU.
        self.due = time.time() + 2 * self.flush_seconds

    def resume(self) -> None:
        """Read the summaries of the points already in the folder (a continued run), after
        cutting a damaged last chunk (a kill in the middle of a write) so new points follow
        the last whole one."""
        truncate_damaged_tail(self.folder.scalars)
        self.summaries = summarize(self.folder.scalars)

    def start(self) -> None:
        """Write the first status (a new run: at the first flush) and hand the run to the
        process's writer thread."""
        if self.first_write is None:
            self.folder.abort_request.unlink(missing_ok=True)  # from an earlier life of the run
            self.write_status()
        else:
            self.due = time.time() + 2 * FIRST_WRITE_SECONDS
        _WRITER.add(self)

    def tick(self) -> None:
        """What the writer thread does every `flush_seconds`."""
        if not self._finished:
            self._check_abort()
            self.catch_up()

    def catch_up_here(self) -> None:
        """`catch_up` from a reporting thread, in the process that records the run only (a
        child made by fork, e.g. a data-loading worker, inherits the run but must not write
        its files)."""
        if os.getpid() == self.pid:
            self.catch_up()

    def catch_up(self) -> None:
        """Flush, keeping on when writing fails (and saying so once): by the writer thread,
        and by a reporting thread that finds the thread late."""
        try:
            self.flush()
        except Exception as error:  # keep recording; say why points may be missing
            self._failures += 1
            if self._failures == 1:
                logger.warning(
                    "run %s: writing to %s failed (%s); retrying every %.1f s",
                    self.folder.run_id,
                    self.folder.path,
                    error,
                    self.flush_seconds,
                )

    def _check_abort(self) -> None:
        """`abort()` from another process or host left a request: stop like on SIGTERM
        (the run then records `aborted`)."""
        if not self._abort_sent and self.folder.abort_request.exists():
            self._abort_sent = True
            os.kill(os.getpid(), signal.SIGTERM)

    def flush(self, *, status: bool = False, final: bool = False) -> None:
        """Write what is buffered; rewrite status.json when `status` or a second has passed.
        Does nothing once the final status is written (`stop`). The `final` flush of a run
        whose first files are still to write puts its status into run.json: a run that
        ended within `FIRST_WRITE_SECONDS` has no status.json."""
        with self._write_lock:
            if self._finished:
                return
            with self.lock:
                series, self.series = self.series, {}
                events, self.events = self.events, []
            self.due = time.time() + 2 * self.flush_seconds
            if series:
                self._write_points(series)
            if events:
                self._write_events(events)
            first = self.first_write
            if first is not None and final:
                first(self._status_now())
                self.first_write = None
                return
            if (status or series or first is not None
                    or time.monotonic() - self._last_status >= HEARTBEAT_SECONDS):
                self.write_status()
            if first is not None:
                first(None)
                self.first_write = None

    def _write_points(self, series: dict[SeriesKey, SeriesBuffer]) -> None:
        for points in series.values():
            points.trim()  # a report interrupted between its appends (a signal) is dropped
        data = b"".join(encode_chunk(key, points) for key, points in series.items() if points)
        _append(self.folder.scalars, data)
        for key, points in series.items():
            summary = self.summaries.get(key)
            if summary is None:
                summary = self.summaries[key] = Summary()
            summary.add(points)

    def _write_events(self, events: list[dict[str, Any]]) -> None:
        _append(self.folder.events, "".join(dumps(event) + "\n" for event in events).encode())

    def _status_now(self) -> dict[str, Any]:
        """`status` with the summary of every series and a fresh heartbeat."""
        metrics: dict[str, dict[str, Any]] = {}
        for (title, series), summary in self.summaries.items():
            metrics.setdefault(title, {})[series] = summary.to_json()
        self.status["metrics"] = metrics
        self.status["heartbeat"] = time.time()
        return self.status

    def write_status(self, *, fsync: bool = False) -> None:
        self.folder.write_status(self._status_now(), fsync=fsync)
        self._last_status = time.monotonic()

    def stop(self) -> None:
        """Leave the writer thread and write everything, status.json last (not synced: a
        machine crash in the next seconds leaves the run to read as killed, its points
        whole)."""
        _WRITER.remove(self)  # a tick already under way finds `_finished` and writes nothing
        self.flush(status=True, final=True)
        with self._write_lock:
            self._finished = True


class _Writer:
    """The thread that flushes every live recorder of this process on its own period. Made
    on first use; after a fork the child starts with none (the parent's runs are not its)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._recorders: dict[Recorder, None] = {}  # in start order
        self._thread: threading.Thread | None = None

    def add(self, recorder: Recorder) -> None:
        with self._changed:
            delay = recorder.flush_seconds
            if recorder.first_write is not None:
                delay = min(delay, FIRST_WRITE_SECONDS)
            recorder.next_tick = time.monotonic() + delay
            self._recorders[recorder] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="etude-run-writer",
                                                daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, recorder: Recorder) -> None:
        with self._changed:
            self._recorders.pop(recorder, None)

    def _loop(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [recorder for recorder in self._recorders if recorder.next_tick <= now]
                if not due:
                    wake = min((r.next_tick for r in self._recorders), default=None)
                    self._changed.wait(None if wake is None else wake - now)
                    continue
                for recorder in due:
                    recorder.next_tick = now + recorder.flush_seconds
            for recorder in due:  # outside the lock: a run may start or stop meanwhile
                try:
                    recorder.tick()
                except Exception:  # one run's trouble must not stop the writing of the others
                    logger.exception("run %s: the writer thread's check failed",
                                     recorder.folder.run_id)


_WRITER = _Writer()


def _forget_writer_in_child() -> None:
    global _WRITER
    _WRITER = _Writer()


os.register_at_fork(after_in_child=_forget_writer_in_child)


def _append(path: os.PathLike[str], data: bytes) -> None:
    """One O_APPEND write (a partial write continues until all of `data` is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
