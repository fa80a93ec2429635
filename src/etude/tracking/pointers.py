"""Which run was the last of each (project, name) started on this machine, for `Run.init`'s
reuse and continue: `WORKSPACE/runs/.last/HOST.log`, one line `KEY RUN_ID` appended per new
run, the last line of a key winning (KEY: 20 hex digits of the SHA-1 of project and name).

An append writes into an existing file, where one small file per run would have to be
created (the costly part of a short run on many disks, and one file per name forever).
Each machine appends to its own log, so `O_APPEND` is never shared between NFS clients. Once
a log is `COMPACT_BYTES` long, the appender that makes it pass a power of two rewrites it with
the last line of each key (temporary file + rename) under an exclusive `flock` (so a log of
many distinct names is not rewritten at every append); appenders write under a shared one
and open the log again when it was replaced meanwhile, so no line is lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path

from ..workspace.atomic import write_atomic
from ..workspace.run_folder import runs_root

LAST_DIR = ".last"
COMPACT_BYTES = 1 << 20  # about 19,000 lines
_OPEN_TRIES = 20


def _key(project: str, name: str) -> str:
    return hashlib.sha1(f"{project}\0{name}".encode()).hexdigest()[:20]


def _host() -> str:
    import socket  # lazily: `import etude.tracking` stays light

    return socket.gethostname()


def log_path(workspace: Path) -> Path:
    """This machine's log of last runs in `workspace`."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", _host()) or "host"
    return runs_root(workspace) / LAST_DIR / f"{host}.log"


def _old_pointer(workspace: Path, project: str, name: str) -> Path:
    """Where workspaces made before the log kept the pointer: a file per (host, project,
    name), read when the log has no line for the key."""
    key = hashlib.sha1(f"{_host()}\0{project}\0{name}".encode()).hexdigest()[:20]
    return runs_root(workspace) / LAST_DIR / key


def last_run_id(workspace: Path, project: str, name: str) -> str | None:
    """The id of the last run of (project, name) started on this machine, if any."""
    marker = f"{_key(project, name)} ".encode()
    try:
        data = log_path(workspace).read_bytes()
    except FileNotFoundError:
        data = b""
    data = data[:data.rfind(b"\n") + 1]  # whole lines only (one may be being written)
    found = data.rfind(b"\n" + marker)
    start = found + 1 if found != -1 else (0 if data.startswith(marker) else -1)
    end = data.find(b"\n", start) if start != -1 else -1
    if end != -1:
        return data[start + len(marker):end].decode(errors="replace").strip() or None
    try:
        return _old_pointer(workspace, project, name).read_text().strip() or None
    except OSError:
        return None


def record_last_run(workspace: Path, project: str, name: str, run_id: str) -> None:
    """Append that `run_id` is now the last run of (project, name) on this machine."""
    path = log_path(workspace)
    line = f"{_key(project, name)} {run_id}\n".encode()
    for _ in range(_OPEN_TRIES):
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the workspace's first run: make the folder
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # held while writing: a compaction waits for it
            if not _is_current(fd, path):
                continue  # replaced by a compaction between the open and the lock
            os.write(fd, line)  # one write of a short line with O_APPEND: never interleaved
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size >= COMPACT_BYTES and (size - len(line)).bit_length() < size.bit_length():
            _compact(path, size)
        return
    raise OSError(f"{path}: replaced {_OPEN_TRIES} times while appending to it; "
                  "is another process rewriting it in a loop?")


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _compact(path: Path, size: int) -> None:
    """Rewrite the log with the last line of each key (in the order of those lines)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not _is_current(fd, path) or os.fstat(fd).st_size < size:
            return  # another process compacted it first
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read()
        last: dict[bytes, bytes] = {}
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n") and b" " in line:
                key = line.split(b" ", 1)[0]
                last.pop(key, None)
                last[key] = line
        write_atomic(path, b"".join(last.values()), fsync=False)
    finally:
        os.close(fd)  # releases the lock: waiting appenders find the new file
