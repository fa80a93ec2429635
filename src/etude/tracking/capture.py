"""Environment capture of run tracking: what ran, where, with which packages and which code.

`Run.init` calls `capture` once per run (in a background thread) and stores the result as the
run's `environment`. Its `code` part is enough to rebuild the code state later: a git worktree
at `commit` plus `git apply` of `diff`, or the script's recorded text when it was not in git.

Capture never raises: anything that cannot be recorded is named in the result's `problems`
and logged as a warning on the `etude.tracking` logger. Importing this module loads only the
standard library, and only light parts of it.
"""

from __future__ import annotations

import base64
import fnmatch
import getpass
import hashlib
import logging
import os
import platform
import socket
import stat
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

_log = logging.getLogger("etude.tracking")

SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
"""Words that mark an environment variable as secret (matched case-insensitively)."""

GIT_TIMEOUT_S = 10.0
"""Longest wait for one git command; a slower one is abandoned and noted as a problem."""

_BINARY_SNIFF = 8000  # git's own rule: a NUL in the first 8000 bytes makes a file binary
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# The whole capture


def capture(
    *,
    script: str | None,
    argv: list[str],
    cwd: str,
    exclude: Sequence[str] = (),
    env_names: Sequence[str] = (),
    code: bool = True,
    packages: bool = True,
    untracked_limit: int = 1_000_000,
) -> dict[str, Any]:
    """Describe the running process, its chosen environment variables, packages and code.

    `script` is the entry script (absolute, or relative to `cwd`), None when interactive.
    Returns a JSON-serializable dict with the keys python, executable, platform, host, user,
    pid, cwd, argv, script (absolute path or None), env (see `chosen_environment`), packages
    (see `imported_packages`; [] when `packages` is false), code (see `capture_code`; None
    when `code` is false) and problems (list of messages, empty when all went well).
    Never raises: a part that fails is left at its empty value and named in `problems`.
    """
    problems: list[str] = []
    no_env: dict[str, str] = {}
    no_packages: list[str] = []
    script_path = _absolute_script(script, cwd)
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": _guarded(problems, "the platform", platform.platform, None),
        "host": _guarded(problems, "the host name", socket.gethostname, None),
        "user": _guarded(problems, "the user name", getpass.getuser, None),
        "pid": os.getpid(),
        "cwd": _absolute(cwd),
        "argv": [str(arg) for arg in argv],
        "script": script_path,
        "env": _guarded(
            problems, "environment variables", lambda: chosen_environment(env_names), no_env
        ),
        "packages": [],
        "code": None,
        "problems": problems,
    }
    if packages:
        result["packages"] = _guarded(problems, "imported packages", imported_packages, no_packages)
    if code:
        result["code"] = _guarded(
            problems,
            "the code state",
            lambda: _capture_code(script_path, cwd, exclude, untracked_limit, problems),
            None,
        )
    return result


def _guarded(problems: list[str], what: str, compute: Callable[[], _T], default: _T) -> _T:
    """`compute()`, or `default` with a logged problem when it raises: capture never fails."""
    try:
        return compute()
    except Exception as exc:  # capture must not break the run; the cause is logged and kept
        _note(problems, f"{what} could not be captured: {type(exc).__name__}: {exc}", exc)
        return default


def _note(problems: list[str], message: str, exc: BaseException | None = None) -> None:
    _log.warning("environment capture: %s", message, exc_info=exc)
    problems.append(message)


def _absolute(path: str) -> str:
    """`path` made absolute and normalized; left as given when the process cwd is gone."""
    if os.path.isabs(path):
        return os.path.normpath(path)
    try:
        return os.path.abspath(path)
    except OSError:
        return path


def _absolute_script(script: str | None, cwd: str) -> str | None:
    if not script:
        return None
    return _absolute(os.path.join(cwd, script))


# ---------------------------------------------------------------------------------------------
# Environment variables


def chosen_environment(names: Sequence[str]) -> dict[str, str]:
    """The values of the environment variables named in `names` that are set, sorted by name.

    A name holding `*`, `?` or `[` is a glob pattern (`fnmatch`, case-sensitive), e.g.
    `CUDA_*` or `SLURM_*`. A variable whose name contains one of `SECRET_WORDS`
    (case-insensitively, e.g. `HF_TOKEN`, `AWS_SECRET_ACCESS_KEY`) is recorded only when it is
    named exactly, never through a pattern, so that `*` cannot leak credentials.
    """
    environ = os.environ
    chosen: dict[str, str] = {}
    for name in names:
        if not _is_pattern(name):
            if name in environ:
                chosen[name] = environ[name]
            continue
        for key, value in environ.items():
            if fnmatch.fnmatchcase(key, name) and not _is_secret(key):
                chosen[key] = value
    return dict(sorted(chosen.items()))


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def _is_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in SECRET_WORDS)


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
# Packages

_distributions_lock = threading.Lock()
_module_distributions: Mapping[str, list[str]] | None = None  # top-level module -> dist names
_versions: dict[str, str | None] = {}  # distribution name -> version (None: not installed)


def imported_packages() -> list[str]:
    """The distributions providing the top-level modules now in `sys.modules`, as sorted,
    unique requirements lines `name==version`.

    Standard-library modules are left out. A module that no distribution lists (e.g. a
    package installed in editable mode, such as etude in its own checkout) is still
    recorded when a distribution of the same name is installed; plain local modules are
    not. A namespace package (e.g. `google`) yields every distribution sharing it. The
    module-to-distribution map is built once per process (the first call takes a few
    hundred milliseconds); later calls take a few milliseconds.
    """
    mapping = _distribution_map()
    stdlib = sys.stdlib_module_names
    tops = {name.partition(".")[0] for name in list(sys.modules)}
    lines: dict[str, str] = {}
    for top in tops:
        if top in stdlib or not top.isidentifier():
            continue
        for dist in mapping.get(top) or [top]:
            version = _version(dist)
            if version is not None:
                lines.setdefault(_canonical(dist), f"{dist}=={version}")
    return sorted(lines.values(), key=str.lower)


def _distribution_map() -> Mapping[str, list[str]]:
    global _module_distributions
    with _distributions_lock:
        if _module_distributions is None:
            # importlib.metadata costs ~60 ms to import: loaded on first use, not with etude
            from importlib import metadata

            _module_distributions = metadata.packages_distributions()
        return _module_distributions


def _version(dist: str) -> str | None:
    if dist not in _versions:
        from importlib import metadata

        try:
            _versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            _versions[dist] = None
    return _versions[dist]


def _canonical(dist: str) -> str:
    """The distribution name as PEP 503 compares it."""
    out = dist.lower()
    for sep in "_.":
        out = out.replace(sep, "-")
    while "--" in out:
        out = out.replace("--", "-")
    return out


# ---------------------------------------------------------------------------------------------
# Code state


def capture_code(
    script: str | None,
    cwd: str,
    exclude: Sequence[str] = (),
    untracked_limit: int = 1_000_000,
) -> dict[str, Any]:
    """The code state of `script` (or of `cwd` when `script` is None), enough to rebuild it.

    Inside a git work tree: {"kind": "git", "root", "branch" (None when detached), "commit"
    (None before the first commit), "remote" (URL of the branch's upstream remote, else of
    `origin`, else None; credentials stripped), "script" (relative to root, POSIX, or None),
    "working_dir" (`cwd` relative to root, "." when equal, absolute when outside), "diff",
    "untracked", "skipped_untracked"}. `diff` is one patch that `git apply` accepts on a
    clean checkout of `commit` (or an empty tree when `commit` is None) and that recreates
    the work tree: tracked changes (staged or not, binary ones included) and the untracked,
    not ignored files listed in `untracked`. Untracked files larger than `untracked_limit`
    bytes, unreadable ones and nested repositories are listed in `skipped_untracked`
    instead. Paths under any of the absolute paths in `exclude` are left out entirely.

    Otherwise: {"kind": "script", "script" (absolute or None), "working_dir" (absolute),
    "text" (the script's text; None when interactive, unreadable or larger than
    `untracked_limit`)}. Problems are logged as warnings; nothing is raised for a missing
    or broken git.
    """
    return _capture_code(_absolute_script(script, cwd), cwd, exclude, untracked_limit, [])


def _capture_code(
    script: str | None,
    cwd: str,
    exclude: Sequence[str],
    untracked_limit: int,
    problems: list[str],
) -> dict[str, Any]:
    start = os.path.dirname(script) if script else _absolute(cwd)
    repo: tuple[str, str] | None = None
    if not os.path.isdir(start):
        _note(problems, f"folder {start} does not exist; code recorded without git")
    else:
        try:
            repo = _locate_repo(start)
        except _GitError as exc:
            _note(problems, f"{exc}; code recorded as the script's text")
    if repo is None:
        return _script_state(script, cwd, untracked_limit, problems)
    root, object_format = repo
    try:
        return _git_state(root, object_format, script, cwd, exclude, untracked_limit, problems)
    except _GitError as exc:
        _note(problems, f"{exc}; code recorded as the script's text")
        return _script_state(script, cwd, untracked_limit, problems)


def _script_state(script: str | None, cwd: str, limit: int, problems: list[str]) -> dict[str, Any]:
    text: str | None = None
    if script is not None:
        try:
            with open(script, "rb") as file:
                data = file.read(limit + 1)
            if len(data) > limit:
                _note(problems, f"script {script} is larger than {limit} bytes; text not kept")
            else:
                text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _note(problems, f"script {script} could not be read: {exc}")
    return {"kind": "script", "script": script, "working_dir": _absolute(cwd), "text": text}


def _git_state(
    root: str,
    object_format: str,
    script: str | None,
    cwd: str,
    exclude: Sequence[str],
    limit: int,
    problems: list[str],
) -> dict[str, Any]:
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
        "working_dir": _relative_posix(_absolute(cwd), real_root) or _absolute(cwd),
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


class _GitError(Exception):
    """git is missing, timed out or failed; the message says which command and why."""


def _git(args: Sequence[str], cwd: str, ok: Sequence[int] = (0,)) -> bytes:
    """The standard output of `git args` run in `cwd`; raise _GitError unless its exit
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
        raise _GitError("git was not found on PATH; install git to record the code") from exc
    except subprocess.TimeoutExpired as exc:
        raise _GitError(f"git {args[0]} in {cwd} took over {GIT_TIMEOUT_S:g} s") from exc
    except OSError as exc:
        raise _GitError(f"git {args[0]} in {cwd} could not start: {exc}") from exc
    if done.returncode not in ok:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise _GitError(f"git {args[0]} in {cwd} failed: {message}")
    return done.stdout


def _locate_repo(start: str) -> tuple[str, str] | None:
    """(work tree root, object format) of the repository holding `start`; None outside git."""
    try:
        out = _git(["rev-parse", "--show-toplevel", "--show-object-format"], start)
    except _GitError as exc:
        if "not a git repository" in str(exc):
            return None
        raise
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if not lines or not lines[0]:
        raise _GitError(f"git rev-parse in {start} gave no work tree (a bare repository?)")
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
            _note(problems, f"path {parts[-1]!r} in {root} is not UTF-8; left out of the diff")
            continue
        if kind == b"?":
            status.untracked.append(path)
            continue
        status.tracked.append(path)
        if kind == b"u":
            _note(problems, f"{path} in {root} has merge conflicts; the diff may not apply")
        elif parts[2].startswith(b"S"):
            _note(problems, f"submodule {path} in {root} changed; the diff holds its commit only")
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
    except _GitError as exc:
        _note(problems, f"the remote could not be read: {exc}")
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
            _note(problems, f"a change in {root} ({head!r}) is not UTF-8 text; left out")
            continue
        try:
            texts.append(_binary_rewrite(section, root, path, object_format))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            _note(problems, f"{path} in {root} could not be recorded as a binary patch: {exc}")
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
        _note(problems, f"{full} is a nested repository; left out of the diff")
        return None
    try:
        info = os.lstat(full)
        if info.st_size > limit:
            _log.info("environment capture: %s is over %d bytes; left out", full, limit)
            return None
        mode = _git_mode(info.st_mode)
        data = _file_bytes(full, limit + 1)
    except OSError as exc:
        _note(problems, f"untracked {full} could not be read: {exc}")
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
