"""Tokens: named counters of a resource shared by every experiment of a workspace.

A token `NAME` of size N is N slot files, `WORKSPACE/.etude/tokens/NAME/slot-I.lock`; taking
k units of it is holding `flock` on k free slots. The kernel frees a slot when the last
process holding its descriptor ends, so a killed job or experiment never keeps its units.
"""

from __future__ import annotations

import re
from pathlib import Path

from .layout import ETUDE_DIR
from .locks import FileLock

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_token(name: str, size: int) -> None:
    """Raise `ValueError` for a token name that is not a plain file name, or a size below 1."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"token name {name!r}: use letters, digits, '_', '.' and '-' (e.g. 'cpu', 'gpu-a100')."
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"token {name!r}: its size must be an integer >= 1, got {size!r}.")


def take_units(workspace: Path, name: str, size: int, count: int) -> list[FileLock] | None:
    """Take `count` free slots of token `name` (of `size` slots) without waiting; None (and
    nothing held) when fewer are free."""
    folder = workspace / ETUDE_DIR / "tokens" / name
    folder.mkdir(parents=True, exist_ok=True)
    held: list[FileLock] = []
    for i in range(size):
        lock = FileLock(folder / f"slot-{i}.lock")
        if lock.try_acquire():
            held.append(lock)
            if len(held) == count:
                return held
    release_units(held)
    return None


def release_units(locks: list[FileLock]) -> None:
    """Close this process's descriptors of the slots (a job process sharing them keeps them)."""
    for lock in locks:
        lock.release()
