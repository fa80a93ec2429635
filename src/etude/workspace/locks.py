"""Job locks: `flock` on a file in the job directory.

The kernel releases such a lock when the last process holding its file descriptor exits, so a
crashed holder never leaves a stale lock. etude needs one thing `filelock` does not offer: the
scheduler takes the lock and hands the very same descriptor to the job process, so the lock
lives exactly as long as the job does, even if the scheduler dies first.

`flock` locks belong to open files, not to processes: a second `open` of the same path in the
same process conflicts with the first, so a thread waiting for a lock it already holds would
wait forever. `FileLock.acquire` refuses that with `LockReentryError` instead (another thread
of the process may wait: the holder will release it).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

#: Locks held through `FileLock` in this process: (device, inode) -> (pid, holding thread id).
#: The pid makes entries inherited by a forked child count for nothing there.
_HELD: dict[tuple[int, int], tuple[int, int]] = {}
_HELD_GUARD = threading.Lock()


class LockReentryError(RuntimeError):
    """The calling thread asked to wait for a lock it already holds (it would never return)."""


class FileLock:
    """An exclusive lock on `path` (created if needed).

    Not re-entrant: `acquire` by the thread that holds the lock (through another `FileLock`
    of the same file) raises `LockReentryError` rather than waiting forever.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self._key: tuple[int, int] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if free; return whether this object now holds it."""
        if self.fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._hold(fd)
        return True

    def acquire(self) -> None:
        """Wait until the lock is free, then take it."""
        if self.fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._refuse_reentry(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._hold(fd)

    def _refuse_reentry(self, fd: int) -> None:
        stat = os.fstat(fd)
        holder = _HELD.get((stat.st_dev, stat.st_ino))
        if holder == (os.getpid(), threading.get_ident()):
            raise LockReentryError(
                f"{self.path}: this thread already holds this lock and would wait for itself "
                "forever. A computation is probably asking, from inside itself, for the job "
                "that holds the lock (e.g. a cached method calling itself); call the "
                "undecorated code instead."
            )

    def _hold(self, fd: int) -> None:
        stat = os.fstat(fd)
        self.fd, self._key = fd, (stat.st_dev, stat.st_ino)
        with _HELD_GUARD:
            _HELD[self._key] = (os.getpid(), threading.get_ident())

    def release(self) -> None:
        """Close this process's descriptor (the lock stays held by any process sharing it)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            key, self._key = self._key, None
            with _HELD_GUARD:
                if key is not None and _HELD.get(key, (0, 0))[0] == os.getpid():
                    del _HELD[key]
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """True if some process holds the lock on `path` (checked without waiting)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
