"""Console capture: everything a process writes to stdout and stderr, copied to a log file while
it still reaches the terminal.

The capture works on file descriptors, not on `sys.stdout`: fd 1 and fd 2 are pointed at pipes,
and a reader thread copies each chunk that arrives to the log file, then to the original
descriptor. Output of C extensions, `os.write(1, ...)` and child processes (which inherit fd 1
and fd 2) is therefore captured too. Both streams go to one file, in the order in which chunks
arrive. POSIX only (pipes, `dup2`, `select`).

Every chunk is written to the file with `os.write` before it is shown on the terminal: what the
terminal shows is already in the file, and a process killed with SIGKILL leaves a file holding
everything the reader thread had copied.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import selectors
import stat
import struct
import sys
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConsoleCapture", "read_console"]

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
# How often an idle reader thread checks whether stop() has given up waiting for it.
_POLL_S = 0.1
# How long one chunk may wait for a terminal that does not accept output (a non-blocking fd
# whose reader is slow) before the chunk is dropped from the terminal; the log file has it.
_ECHO_WAIT_S = 1.0


@dataclass
class _Redirect:
    """One captured descriptor: a copy of what it pointed to before, and the pipe it points to
    now (identified by device and inode, to recognise it at stop())."""

    fd: int
    saved: int
    read_end: int
    pipe_id: tuple[int, int]


@dataclass
class _Stream:
    """What the reader thread owns for one captured descriptor."""

    fd: int
    read_end: int
    echo: int | None


class _Copier:
    """The reader thread's work: copy each chunk from the pipes to the log file, then to the
    original descriptor, until every pipe reaches end of file or `abandon()` is called.

    The copier owns the pipes' read ends, its echo descriptors and the log file descriptor, and
    closes them when it ends. Problems are collected in `problems` rather than logged: a log
    handler writing to stderr would write into the very pipe this thread drains.
    """

    def __init__(self, log_fd: int, streams: list[_Stream]) -> None:
        self._log_fd: int | None = log_fd
        self._streams = streams
        self._selector = selectors.DefaultSelector()
        for stream in streams:
            self._selector.register(stream.read_end, selectors.EVENT_READ, stream)
        self._abandoned = threading.Event()
        self._changed = threading.Condition()
        self._closed = False
        self._busy = False
        self.problems: list[str] = []

    def run(self) -> None:
        try:
            while self._selector.get_map():
                if self._abandoned.is_set():
                    self._copy_ready(timeout=0)
                    break
                self._copy_ready(timeout=_POLL_S)
        except BaseException as error:  # the thread must still close its descriptors
            self.problems.append(f"reader thread failed: {error!r}")
            raise
        finally:
            self._close()

    def abandon(self) -> None:
        """Ask the thread to copy what is already in the pipes and end, without waiting for end
        of file."""
        self._abandoned.set()

    def wait_idle(self, deadline: float) -> bool:
        """Wait until everything written to the pipes so far has been copied, or `deadline`
        (a `time.monotonic()` value) passes; return whether it was copied."""
        with self._changed:
            while not self._closed:
                # Order matters: `_busy` is set before each read, so empty pipes followed by
                # a thread that is not busy mean that every chunk read so far was copied.
                if not self._pending() and not self._busy:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.01))
        return True

    def _pending(self) -> bool:
        for stream in self._streams:
            if stream.read_end >= 0 and _pending_bytes(stream.read_end) > 0:
                return True
        return False

    def _copy_ready(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            stream: _Stream = key.data
            self._busy = True
            try:
                self._copy_chunk(stream)
            finally:
                self._busy = False
                with self._changed:
                    self._changed.notify_all()

    def _copy_chunk(self, stream: _Stream) -> None:
        data = os.read(stream.read_end, _CHUNK)
        if not data:
            with self._changed:
                self._selector.unregister(stream.read_end)
                os.close(stream.read_end)
                stream.read_end = -1
            return
        self._write_log(data)
        self._echo(stream, data)

    def _write_log(self, data: bytes) -> None:
        if self._log_fd is None:
            return
        try:
            _write_all(self._log_fd, data)
        except OSError as error:
            self.problems.append(f"writing the log file failed ({error}); output after it is lost")
            os.close(self._log_fd)
            self._log_fd = None

    def _echo(self, stream: _Stream, data: bytes) -> None:
        if stream.echo is None:
            return
        try:
            _write_all(stream.echo, data, wait_s=_ECHO_WAIT_S)
        except TimeoutError:
            self.problems.append(
                f"fd {stream.fd}: the terminal did not accept output for {_ECHO_WAIT_S} s; "
                "some output was not shown there (the log file has it)"
            )
        except OSError as error:
            self.problems.append(
                f"fd {stream.fd}: the terminal no longer accepts output ({error}); "
                "later output goes to the log file only"
            )
            os.close(stream.echo)
            stream.echo = None

    def _close(self) -> None:
        with self._changed:
            self._closed = True
            self._selector.close()
            for stream in self._streams:
                for fd in (stream.read_end, stream.echo):
                    if fd is not None and fd >= 0:
                        os.close(fd)
                stream.read_end, stream.echo = -1, None
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None
            self._changed.notify_all()


class ConsoleCapture:
    """Copies everything written to the descriptors `fds` (stdout and stderr by default) to the
    file `path`, opened in append mode, while it still reaches the original descriptors.

    `start()` and `stop()` are idempotent; `stop()` restores the descriptors and returns once
    everything written before it is in the file. It waits at most `drain_timeout` seconds for
    child processes that inherited the captured descriptors and still hold them; it then logs a
    warning and stops copying. A second capture started while one is active chains onto it
    (its reader writes to the first one's pipe); stop captures in the reverse order of start.
    The capture is also stopped at normal interpreter exit. A descriptor that is not open at
    start() is skipped, with a warning.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fds: tuple[int, ...] = (1, 2),
        drain_timeout: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self._fds = _check_fds(fds)
        if drain_timeout < 0:
            raise ValueError(
                f"ConsoleCapture({str(self.path)!r}): drain_timeout must be >= 0 seconds, "
                f"got {drain_timeout!r}"
            )
        self._drain_timeout = drain_timeout
        self._lock = threading.Lock()
        self._owner_pid: int | None = None
        self._redirects: list[_Redirect] = []
        self._copier: _Copier | None = None
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """Whether this process is capturing (false in a process forked from a capturing one)."""
        return self._owner_pid == os.getpid()

    def start(self) -> None:
        """Point the descriptors at pipes and start copying; a no-op when already active.

        Raises OSError when the log file cannot be opened or a pipe cannot be made; the
        descriptors are then left as they were.
        """
        with self._lock:
            if self.active:
                return
            self._forget()  # state inherited through fork() belongs to the parent
            # Which descriptors are open is checked before this capture opens any of its own;
            # its own are then kept above 0-2 and `fds`, so that none of them fills the slot of
            # a closed standard descriptor (writes to that slot would land in them).
            targets = self._open_fds()
            floor = max(3, *(fd + 1 for fd in self._fds))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            log_fd = _move_above(os.open(self.path, flags, 0o644), floor)
            _flush_buffers()
            redirects: list[_Redirect] = []
            streams: list[_Stream] = []
            try:
                for fd in targets:
                    redirect = _redirect(fd, floor)
                    redirects.append(redirect)
                    echo = _dup_above(redirect.saved, floor)
                    streams.append(_Stream(fd, redirect.read_end, echo))
                copier = _Copier(log_fd, streams)
                thread = threading.Thread(
                    target=copier.run, name=f"etude-console:{self.path.name}", daemon=True
                )
                thread.start()  # from here on the thread owns the streams and the log file
            except BaseException:
                _undo(redirects, streams)
                os.close(log_fd)
                raise
            self._copier, self._thread, self._redirects = copier, thread, redirects
            self._owner_pid = os.getpid()
            atexit.register(self.stop)

    def stop(self) -> None:
        """Restore the descriptors and wait until everything written so far is in the file;
        a no-op when not active."""
        with self._lock:
            if not self.active:
                self._forget()
                return
            atexit.unregister(self.stop)
            _flush_buffers()
            for redirect in reversed(self._redirects):
                self._restore(redirect)
            self._finish_copying()
            self._forget()

    def flush(self) -> None:
        """Best effort: flush Python's and C's stdio buffers and wait (at most `drain_timeout`
        seconds) until what they and anything else wrote so far is in the file."""
        with self._lock:
            if not self.active or self._copier is None:
                return
            _flush_buffers()
            if not self._copier.wait_idle(time.monotonic() + self._drain_timeout):
                logger.debug(
                    "console capture of %s: flush() gave up after %s s with output still "
                    "being copied",
                    self.path,
                    self._drain_timeout,
                )

    def __enter__(self) -> ConsoleCapture:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _open_fds(self) -> list[int]:
        """The descriptors to capture that are open; a warning for each one that is not."""
        open_fds = []
        for fd in self._fds:
            try:
                os.fstat(fd)
            except OSError as error:
                logger.warning(
                    "console capture of %s: fd %d is not open (%s), so it is not captured; "
                    "start the process with it open (e.g. on /dev/null) to capture it",
                    self.path,
                    fd,
                    error.strerror,
                )
                continue
            open_fds.append(fd)
        return open_fds

    def _restore(self, redirect: _Redirect) -> None:
        if _points_to(redirect.fd, redirect.pipe_id) is False:
            logger.warning(
                "console capture of %s: fd %d was redirected again since start() (by another "
                "capture still active, or by the program), so it is left as it is; stop "
                "captures in the reverse order of start()",
                self.path,
                redirect.fd,
            )
        else:
            os.dup2(redirect.saved, redirect.fd)
        os.close(redirect.saved)

    def _finish_copying(self) -> None:
        """Wait for the reader to reach end of file on every pipe, within `drain_timeout`."""
        thread, copier = self._thread, self._copier
        if thread is None or copier is None:
            return
        thread.join(self._drain_timeout)
        if thread.is_alive():
            copier.abandon()
            thread.join(_POLL_S * 5)
            logger.warning(
                "console capture of %s: output was still arriving %s s after stop() (a child "
                "process that inherited stdout/stderr is still running, or the terminal is "
                "not reading); stopped copying, so later output is not in the file. Wait for "
                "child processes before stop() to keep all their output",
                self.path,
                self._drain_timeout,
            )
        for problem in copier.problems:
            logger.warning("console capture of %s: %s", self.path, problem)

    def _forget(self) -> None:
        self._owner_pid = None
        self._redirects = []
        self._copier = None
        self._thread = None


def read_console(path: str | os.PathLike[str], tail_bytes: int | None = None) -> str:
    """The text of a console log (UTF-8, undecodable bytes replaced), or of its last
    `tail_bytes` bytes (a character cut by the tail's start is dropped).

    Raises FileNotFoundError when there is no such file, ValueError when `tail_bytes` < 0.
    """
    if tail_bytes is not None and tail_bytes < 0:
        raise ValueError(f"read_console({str(path)!r}): tail_bytes must be >= 0, got {tail_bytes}")
    with open(path, "rb") as file:
        if tail_bytes is None:
            return file.read().decode("utf-8", errors="replace")
        size = file.seek(0, os.SEEK_END)
        start = max(0, size - tail_bytes)
        file.seek(start)
        data = file.read(tail_bytes)
    if start > 0:
        data = _skip_continuation_bytes(data)
    return data.decode("utf-8", errors="replace")


def _check_fds(fds: tuple[int, ...]) -> tuple[int, ...]:
    fds = tuple(fds)
    if not fds or any(not isinstance(fd, int) or isinstance(fd, bool) or fd < 0 for fd in fds):
        raise ValueError(
            f"ConsoleCapture: fds must be a non-empty tuple of file descriptors (ints >= 0), "
            f"got {fds!r}; the default is (1, 2), stdout and stderr"
        )
    if len(set(fds)) != len(fds):
        raise ValueError(f"ConsoleCapture: fds lists a descriptor twice: {fds!r}")
    return fds


def _redirect(fd: int, floor: int) -> _Redirect:
    """Point `fd` at the write end of a new pipe; the write end is then held only by `fd` (and
    by the children that inherit it), so restoring `fd` lets the reader see end of file. The
    descriptors this keeps are numbered `floor` or above."""
    saved = _dup_above(fd, floor)
    try:
        read_end, write_end = os.pipe()
    except BaseException:
        os.close(saved)
        raise
    try:
        read_end = _move_above(read_end, floor)  # closes the old read end, even on failure
    except BaseException:
        os.close(saved)
        os.close(write_end)
        raise
    try:
        os.dup2(write_end, fd)  # inheritable: child processes write into the capture too
    except BaseException:
        os.close(saved)
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    info = os.fstat(read_end)
    return _Redirect(fd, saved, read_end, (info.st_dev, info.st_ino))


def _dup_above(fd: int, floor: int) -> int:
    """A close-on-exec copy of `fd` numbered `floor` or above."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _move_above(fd: int, floor: int) -> int:
    """`fd` itself if numbered `floor` or above, else a copy that is (and `fd` is closed)."""
    if fd >= floor:
        return fd
    try:
        return _dup_above(fd, floor)
    finally:
        os.close(fd)


def _undo(redirects: list[_Redirect], streams: list[_Stream]) -> None:
    """Put back what a failed start() changed."""
    for redirect in reversed(redirects):
        os.dup2(redirect.saved, redirect.fd)
        os.close(redirect.saved)
        os.close(redirect.read_end)
    for stream in streams:
        if stream.echo is not None:
            os.close(stream.echo)


def _points_to(fd: int, pipe_id: tuple[int, int]) -> bool | None:
    """Whether `fd` is the pipe `pipe_id`; None when `fd` is closed."""
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return stat.S_ISFIFO(info.st_mode) and (info.st_dev, info.st_ino) == pipe_id


def _pending_bytes(fd: int) -> int:
    """How many bytes wait to be read from the pipe `fd`."""
    raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


def _write_all(fd: int, data: bytes, wait_s: float | None = None) -> None:
    """Write all of `data` to `fd`. When `fd` is non-blocking (a flag shared with whoever else
    holds it), wait up to `wait_s` seconds for it to accept more, then raise TimeoutError."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            if wait_s is None or not _wait_writable(fd, wait_s):
                raise TimeoutError(f"fd {fd} accepted no output for {wait_s} s") from None
            continue
        view = view[written:]


def _wait_writable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_WRITE)
        return bool(selector.select(timeout))


def _flush_buffers() -> None:
    """Flush Python's standard streams and C's stdio buffers, so that what was written before a
    redirection goes where it was headed when it was written."""
    streams = [
        getattr(sys, name, None) for name in ("stdout", "stderr", "__stdout__", "__stderr__")
    ]
    for stream in dict.fromkeys(s for s in streams if s is not None):
        try:
            stream.flush()
        except Exception as error:  # a closed or foreign stream: nothing to flush
            logger.debug("console capture: could not flush %r: %r", stream, error)
    _flush_c_stdio()


def _flush_c_stdio() -> None:
    # ctypes is imported here, not at module level, to keep `import etude.tracking` light.
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError) as error:
        logger.debug("console capture: could not flush C stdio buffers: %r", error)


def _skip_continuation_bytes(data: bytes) -> bytes:
    """Drop the UTF-8 continuation bytes (at most 3) a cut through a character leaves first."""
    skip = 0
    while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
        skip += 1
    return data[skip:]
