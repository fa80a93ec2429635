"""Atomic file writes: a reader sees the old content or the new one, never a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str, *, fsync: bool = True) -> None:
    """Write `data` to a temporary file beside `path` (pid + random name), fsync, then rename.

    `fsync=False` for files that can be written again: a machine crash may then lose the file,
    but never leaves it half-written.
    """
    if isinstance(data, str):
        data = data.encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        # os.open/os.write rather than open(): no buffer object, no fstat/isatty calls (a run
        # writes several small files; the syscalls are most of their cost).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to the blocking descriptor `fd` (os.write may write less)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def write_json_atomic(
    path: Path, value: Any, *, compact: bool = False, fsync: bool = True
) -> None:
    """Write `value` as JSON atomically; `compact` for large files (much faster to encode)."""
    text = json.dumps(value) if compact else json.dumps(value, indent=1, sort_keys=True)
    write_atomic(path, text + "\n", fsync=fsync)


class CorruptFileError(ValueError):
    """A workspace file exists but cannot be read (truncated, garbage, wrong shape)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def read_json(path: Path) -> Any:
    """Read a JSON file; raises FileNotFoundError, or CorruptFileError naming the path."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptFileError(path, f"cannot be read ({exc})") from exc
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"is not valid JSON ({exc})") from exc
