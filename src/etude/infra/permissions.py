"""`permissions`: the mode given to cache folders and files, so that a team can share a cache.

An int is an absolute mode (`0o775`): folders get it, files get it without the execute bits
unless they were executable (like `chmod`'s `X`). A string is a `chmod`-style symbolic mode
(`"g+rwX,o+rX"`), applied to the current mode of each path; `X` adds execute on folders (and
on files executable already).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger("etude.infra")

_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxX]*)$")
_WHO = {"u": 0o700, "g": 0o070, "o": 0o007, "a": 0o777}
_WHAT = {"r": 0o444, "w": 0o222, "x": 0o111}

Permissions = int | str


def check(permissions: Permissions | None) -> Permissions | None:
    """`permissions` if valid; `ValueError` (for pydantic) saying what is accepted."""
    if permissions is None:
        return None
    if isinstance(permissions, bool) or not isinstance(permissions, (int, str)):
        raise ValueError(f"permissions must be an int or a string, got {permissions!r}")
    if isinstance(permissions, int):
        if not 0 <= permissions <= 0o7777:
            raise ValueError(f"permissions {permissions!r} is not a mode; use e.g. 0o775")
        return permissions
    for clause in permissions.split(","):
        if not _CLAUSE.match(clause):
            raise ValueError(
                f"permissions {permissions!r}: {clause!r} is not a chmod clause such as "
                "'g+rwX' or 'o-w' (who: u, g, o, a; op: +, -, =; what: r, w, x, X); or give "
                "an int such as 0o775"
            )
    return permissions


def new_mode(permissions: Permissions, mode: int, is_dir: bool) -> int:
    """The mode that `permissions` gives a path whose current mode is `mode`."""
    current = stat.S_IMODE(mode)
    if isinstance(permissions, int):
        return permissions if is_dir or current & 0o111 else permissions & ~0o111
    for clause in permissions.split(","):
        found = _CLAUSE.match(clause)
        assert found is not None  # checked by `check`
        who_text, op, what_text = found.groups()
        who = 0
        for letter in who_text or "a":
            who |= _WHO[letter]
        what = 0
        for letter in what_text:
            if letter == "X":
                if is_dir or current & 0o111:
                    what |= 0o111
            else:
                what |= _WHAT[letter]
        bits = who & what
        if op == "+":
            current |= bits
        elif op == "-":
            current &= ~bits
        else:
            current = (current & ~who) | bits
    return current


def apply(permissions: Permissions | None, roots: Iterable[Path], *, recursive: bool) -> None:
    """Give `permissions` to each root (and, with `recursive`, everything under it).

    Paths of other users (their mode cannot be changed) and paths that vanished are skipped,
    with a debug log: in a shared cache, each user shares what they wrote.
    """
    if permissions is None:
        return
    for root in roots:
        _chmod(permissions, root)
        if recursive and root.is_dir():
            for folder, dirs, files in os.walk(root):
                for name in (*dirs, *files):
                    _chmod(permissions, Path(folder, name))


def _chmod(permissions: Permissions, path: Path) -> None:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return
        mode = new_mode(permissions, info.st_mode, stat.S_ISDIR(info.st_mode))
        if mode != stat.S_IMODE(info.st_mode):
            path.chmod(mode)
    except (PermissionError, FileNotFoundError) as exc:
        logger.debug("etude: permissions of %s left as they are: %s", path, exc)
