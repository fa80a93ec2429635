"""The git half of environment capture: running git, reading a work tree's state, and
writing the patch that `git apply` turns back into it.

`capture.capture_code` calls `locate_repo` and `git_state`; everything here reports what it
cannot record through `note_problem` (a warning on the `etude.tracking` logger plus an entry
in the capture's `problems`) and raises only `GitError`, which the caller turns into a
fallback. Importing this module loads only light parts of the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import subprocess
import zlib
from collections.abc import Sequence
from typing import Any

_log = logging.getLogger("etude.tracking")

GIT_TIMEOUT_S = 10.0
"""Longest wait for one git command; a slower one is abandoned and noted as a problem."""

_BINARY_SNIFF = 8000  # git's own rule: a NUL in the first 8000 bytes makes a file binary


def note_problem(problems: list[str], message: str, exc: BaseException | None = None) -> None:
    """Log `message` as an environment capture warning and add it to `problems`."""
    _log.warning("environment capture: %s", message, exc_info=exc)
    problems.append(message)


def strip_credentials(url: str) -> str:
    """`url` without the credentials it carries.

    For http(s), ftp(s) and other `scheme://` URLs the whole `user:password@` part goes (a
    bare user there is often a token). For ssh URLs (`ssh://`, `git+ssh://`, `ssh+git://`)
    only the password goes: `ssh://user:pw@host/x` gives `ssh://user@host/x`. The scp-like
    form `git@host:org/repo.git` and local paths carry no secret and are returned unchanged.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    userinfo, at, host = rest[:end].rpartition("@")
    if not at:
        return url
    if scheme.lower() in ("ssh", "git+ssh", "ssh+git"):
        user = userinfo.partition(":")[0]
        return f"{scheme}://{user}@{host}{rest[end:]}" if user else f"{scheme}://{host}{rest[end:]}"
    return f"{scheme}://{host}{rest[end:]}"


# ---------------------------------------------------------------------------------------------
# The code state of a git work tree


def git_state(
    root: str,
    object_format: str,
    script: str | None,
    working_dir: str,
    exclude: Sequence[str],
    limit: int,
    problems: list[str],
) -> dict[str, Any]:
    """The "git" code state of the work tree at `root` (see `capture.capture_code`), for the
    absolute `script` (or None) run from the absolute `working_dir`. Raises GitError when git
    fails on a required step; lesser failures are noted in `problems`."""
    excluded = _relative_excludes(root, exclude)
    pathspec = [".", *(f":(exclude,literal){path}" for path in excluded)]
    status = _read_status(root, pathspec, problems)
    zero = _null_id(object_format)
    diff = ""
    if status.tracked:
        base = status.commit or _empty_tree(object_format)
        diff = _tracked_diff(root, base, pathspec, object_format, status.tracked, problems)
    untracked: list[str] = []
    skipped: list[str] = []
    patches = [diff]
    for path in status.untracked:
        patch = _untracked_patch(root, path, object_format, zero, limit, problems)
        (skipped if patch is None else untracked).append(path)
        patches.append(patch or "")
    real_root = os.path.realpath(root)
    return {
        "kind": "git",
        "root": root,
        "branch": status.branch,
        "commit": status.commit,
        "remote": _remote_url(root, status.branch, problems),
        "script": _script_in_repo(script, real_root),
        "working_dir": _relative_posix(working_dir, real_root) or working_dir,
        "diff": "".join(patches),
        "untracked": untracked,
        "skipped_untracked": skipped,
    }


def _relative_posix(path: str, real_root: str) -> str | None:
    """`path` relative to `real_root` in POSIX form, None when it lies outside."""
    relative = os.path.relpath(os.path.realpath(path), real_root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return relative.replace(os.sep, "/")


def _script_in_repo(script: str | None, real_root: str) -> str | None:
    """The script's path relative to the root; its folder is resolved, not the script itself,
    so that a link inside the repository keeps its own name."""
    if script is None:
        return None
    folder = _relative_posix(os.path.dirname(script), real_root)
    if folder is None:
        return None
    name = os.path.basename(script)
    return name if folder == "." else f"{folder}/{name}"


def _relative_excludes(root: str, exclude: Sequence[str]) -> list[str]:
    real_root = os.path.realpath(root)
    out = []
    for path in exclude:
        relative = _relative_posix(path, real_root)
        if relative is not None:
            out.append(relative)
    return out


def _null_id(object_format: str) -> str:
    return "0" * (64 if object_format == "sha256" else 40)


def _empty_tree(object_format: str) -> str:
    return hashlib.new(object_format, b"tree 0\0", usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------------------------
# Running git


class GitError(Exception):
    """git is missing, timed out or failed; the message says which command and why."""


def _git(args: Sequence[str], cwd: str, ok: Sequence[int] = (0,)) -> bytes:
    """The standard output of `git args` run in `cwd`; raise GitError unless its exit
    status is in `ok`. Never prompts, never takes optional locks, messages in English."""
    env = {
        **os.environ,
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",  # `status` must not take index.lock from the user's git
    }
    command = ["git", "-c", "core.quotepath=off", *args]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git was not found on PATH; install git to record the code") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} in {cwd} took over {GIT_TIMEOUT_S:g} s") from exc
    except OSError as exc:
        raise GitError(f"git {args[0]} in {cwd} could not start: {exc}") from exc
    if done.returncode not in ok:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise GitError(f"git {args[0]} in {cwd} failed: {message}")
    return done.stdout


def locate_repo(start: str) -> tuple[str, str] | None:
    """(work tree root, object format) of the repository holding `start`; None outside git."""
    try:
        out = _git(["rev-parse", "--show-toplevel", "--show-object-format"], start)
    except GitError as exc:
        if "not a git repository" in str(exc):
            return None
        raise
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if not lines or not lines[0]:
        raise GitError(f"git rev-parse in {start} gave no work tree (a bare repository?)")
    # git before 2.29 echoes the unknown option back instead of a format name
    object_format = lines[1] if len(lines) > 1 and lines[1] in ("sha1", "sha256") else "sha1"
    return lines[0], object_format


class _Status:
    """What `git status --porcelain=v2` says: HEAD, branch, changed and untracked paths."""

    def __init__(self) -> None:
        self.commit: str | None = None
        self.branch: str | None = None
        self.tracked: list[str] = []  # changed tracked paths, relative to the root
        self.untracked: list[str] = []


def _read_status(root: str, pathspec: list[str], problems: list[str]) -> _Status:
    args = ["status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all"]
    out = _git([*args, "--no-renames", "--", *pathspec], root)
    status = _Status()
    records = iter(out.split(b"\0"))
    for record in records:
        kind = record[:1]
        if kind == b"#":
            _read_header(record.decode("utf-8", "replace"), status)
            continue
        if kind == b"2":
            next(records, None)  # the original path of a rename
        fields = {b"1": 9, b"2": 10, b"u": 11, b"?": 2}.get(kind)
        if fields is None:
            continue
        parts = record.split(b" ", fields - 1)
        try:
            path = parts[-1].decode("utf-8")
        except UnicodeDecodeError:
            note_problem(
                problems, f"path {parts[-1]!r} in {root} is not UTF-8; left out of the diff"
            )
            continue
        if kind == b"?":
            status.untracked.append(path)
            continue
        status.tracked.append(path)
        if kind == b"u":
            note_problem(problems, f"{path} in {root} has merge conflicts; the diff may not apply")
        elif parts[2].startswith(b"S"):
            note_problem(
                problems, f"submodule {path} in {root} changed; the diff holds its commit only"
            )
    return status


def _read_header(line: str, status: _Status) -> None:
    _, _, rest = line.partition(" ")
    key, _, value = rest.partition(" ")
    if key == "branch.oid" and value != "(initial)":
        status.commit = value
    elif key == "branch.head" and value != "(detached)":
        status.branch = value


def _remote_url(root: str, branch: str | None, problems: list[str]) -> str | None:
    """URL of `branch`'s upstream remote, else of `origin`, else None; without credentials."""
    pattern = r"^(remote\..*\.url|branch\..*\.remote)$"
    try:
        out = _git(["config", "-z", "--get-regexp", pattern], root, ok=(0, 1))
    except GitError as exc:
        note_problem(problems, f"the remote could not be read: {exc}")
        return None
    urls: dict[str, str] = {}
    upstream: str | None = None
    for entry in out.decode("utf-8", "replace").split("\0"):
        key, _, value = entry.partition("\n")
        if key.startswith("remote.") and key.endswith(".url"):
            urls.setdefault(key[len("remote.") : -len(".url")], value)
        elif branch is not None and key == f"branch.{branch}.remote":
            upstream = value
    url = urls.get(upstream or "") or urls.get("origin")
    return strip_credentials(url) if url is not None else None


# ---------------------------------------------------------------------------------------------
# Patches


def _tracked_diff(
    root: str,
    base: str,
    pathspec: list[str],
    object_format: str,
    tracked: list[str],
    problems: list[str],
) -> str:
    """The changes of tracked files since `base` as one patch text."""
    options = [
        "--binary",
        "--full-index",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-renames",
    ]
    prefixes = ["--src-prefix=a/", "--dst-prefix=b/"]  # user config may drop or rename them
    out = _git(["diff", *options, *prefixes, base, "--", *pathspec], root)
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return _utf8_sections(out, root, object_format, tracked, problems)


def _utf8_sections(
    out: bytes, root: str, object_format: str, tracked: list[str], problems: list[str]
) -> str:
    """`git diff` output made text: a file section that is not UTF-8 (a latin-1 source, say)
    is rewritten as an equivalent binary patch of the file's current content."""
    headers = {_diff_line(path): path for path in tracked}
    marker = b"\ndiff --git "
    starts = [0] + [i + 1 for i in _find_all(out, marker)]
    sections = [out[a:b] for a, b in zip(starts, [*starts[1:], len(out)], strict=True)]
    texts = []
    for section in sections:
        try:
            texts.append(section.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        head = section.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")
        path = headers.get(head)
        if path is None:
            note_problem(problems, f"a change in {root} ({head!r}) is not UTF-8 text; left out")
            continue
        try:
            texts.append(_binary_rewrite(section, root, path, object_format))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            note_problem(
                problems, f"{path} in {root} could not be recorded as a binary patch: {exc}"
            )
    return "".join(texts)


def _find_all(data: bytes, needle: bytes) -> list[int]:
    found, index = [], data.find(needle)
    while index != -1:
        found.append(index)
        index = data.find(needle, index + 1)
    return found


def _binary_rewrite(section: bytes, root: str, path: str, object_format: str) -> str:
    """The section of `git diff` for `path` with its hunks replaced by a binary literal."""
    header: list[str] = []
    for raw in section.split(b"\n"):
        if raw.startswith((b"--- ", b"+++ ", b"@@", b"GIT binary patch", b"Binary files")):
            break
        header.append(raw.decode("utf-8"))
    deleted = any(line.startswith("deleted file mode") for line in header)
    data = b"" if deleted else _file_bytes(os.path.join(root, path))
    zero = _null_id(object_format)
    for index, line in enumerate(header):
        if line.startswith("index "):
            old, _, rest = line[len("index ") :].partition("..")
            _, space, mode = rest.partition(" ")
            new = zero if deleted else _blob_id(data, object_format)
            header[index] = f"index {old}..{new}{space}{mode}"
            break
    else:
        raise ValueError("git diff gave no index line")
    return "\n".join(header) + "\n" + _binary_body(data)


def _untracked_patch(
    root: str, path: str, object_format: str, zero: str, limit: int, problems: list[str]
) -> str | None:
    """A patch creating the untracked file `path`; None (with a problem noted unless it is
    merely too large) when it cannot be recorded."""
    full = os.path.join(root, path)
    if path.endswith("/"):
        note_problem(problems, f"{full} is a nested repository; left out of the diff")
        return None
    try:
        info = os.lstat(full)
        if info.st_size > limit:
            _log.info("environment capture: %s is over %d bytes; left out", full, limit)
            return None
        mode = _git_mode(info.st_mode)
        data = _file_bytes(full, limit + 1)
    except OSError as exc:
        note_problem(problems, f"untracked {full} could not be read: {exc}")
        return None
    if len(data) > limit:  # it grew since lstat
        return None
    head = [
        _diff_line(path),
        f"new file mode {mode}",
        f"index {zero}..{_blob_id(data, object_format)}",
    ]
    text = None if b"\0" in data[:_BINARY_SNIFF] else _utf8_or_none(data)
    if text is None:
        return "\n".join(head) + "\n" + _binary_body(data)
    return "\n".join(head) + "\n" + _text_body(path, text)


def _git_mode(st_mode: int) -> str:
    if stat.S_ISLNK(st_mode):
        return "120000"
    return "100755" if st_mode & stat.S_IXUSR else "100644"


def _file_bytes(path: str, limit: int = -1) -> bytes:
    """The content git records for `path`: its bytes, or its target for a symbolic link."""
    if os.path.islink(path):
        return os.fsencode(os.readlink(path))
    with open(path, "rb") as file:
        return file.read(limit)


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _blob_id(data: bytes, object_format: str) -> str:
    """The git object id of a blob holding `data`."""
    digest = hashlib.new(object_format, usedforsecurity=False)
    digest.update(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


def _text_body(path: str, text: str) -> str:
    """The ---/+++ lines and the single hunk adding `text` as a new file (none when empty)."""
    if not text:
        return ""
    lines = text.split("\n")  # git splits on LF only; CR stays part of the line
    complete = lines[-1] == ""
    if complete:
        lines.pop()
    label = _quote("b/", path)
    count = f"+1,{len(lines)}" if len(lines) != 1 else "+1"
    out = ["--- /dev/null", f"+++ {label}{_tab_if_spaced(label)}", f"@@ -0,0 {count} @@"]
    out.extend("+" + line for line in lines)
    if not complete:
        out.append("\\ No newline at end of file")
    return "\n".join(out) + "\n"


def _tab_if_spaced(label: str) -> str:
    # git ends a ---/+++ name holding a space with a TAB so that `patch` reads it whole
    return "\t" if " " in label else ""


def _binary_body(data: bytes) -> str:
    """A `GIT binary patch` whose forward hunk is the literal `data` (git's base85 lines:
    a length letter, then 52 deflated bytes at most in base85, which Python's b85 alphabet
    matches)."""
    deflated = zlib.compress(data)
    lines = ["GIT binary patch", f"literal {len(data)}"]
    for start in range(0, len(deflated), 52):
        chunk = deflated[start : start + 52]
        size = len(chunk)
        letter = chr(ord("A") + size - 1) if size <= 26 else chr(ord("a") + size - 27)
        lines.append(letter + base64.b85encode(chunk, pad=True).decode("ascii"))
    return "\n".join(lines) + "\n\n"


_C_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _quote(prefix: str, path: str) -> str:
    """`prefix + path` as git writes names in patches with core.quotepath off: C-quoted when
    it holds a quote, a backslash or a control character, verbatim otherwise."""
    name = prefix + path
    if not any(_needs_escape(char) for char in name):
        return name
    escaped = "".join(_escape(char) if _needs_escape(char) else char for char in name)
    return f'"{escaped}"'


def _needs_escape(char: str) -> bool:
    return char in _C_ESCAPES or ord(char) < 0x20 or ord(char) == 0x7F


def _escape(char: str) -> str:
    return _C_ESCAPES.get(char) or f"\\{ord(char):03o}"


def _diff_line(path: str) -> str:
    return f"diff --git {_quote('a/', path)} {_quote('b/', path)}"
