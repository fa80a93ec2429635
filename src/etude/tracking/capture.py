"""Environment capture of run tracking: what ran, where, with which packages and which code.

`Run.init` calls `capture` once per run (in a background thread) and stores the result as the
run's `environment`. Its `code` part is enough to rebuild the code state later: a git worktree
at `commit` plus `git apply` of `diff`, or the script's recorded text when it was not in git.

Capture never raises: anything that cannot be recorded is named in the result's `problems`
and logged as a warning on the `etude.tracking` logger. Importing this module loads only the
standard library, and only light parts of it.
"""

from __future__ import annotations

import fnmatch
import getpass
import os
import platform
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

# The git half (git invocation, patches) lives in gitpatch; its public names are re-exported
# here, where callers have always found them.
from .gitpatch import (
    GIT_TIMEOUT_S,
    GitError,
    git_state,
    locate_repo,
    note_problem,
    strip_credentials,
)

__all__ = [
    "GIT_TIMEOUT_S",
    "SECRET_WORDS",
    "capture",
    "capture_code",
    "chosen_environment",
    "imported_packages",
    "strip_credentials",
]

SECRET_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
"""Words that mark an environment variable as secret (matched case-insensitively)."""

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
        note_problem(problems, f"{what} could not be captured: {type(exc).__name__}: {exc}", exc)
        return default


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
    module-to-distribution map is built once per process (the first call takes tens of
    milliseconds); later calls take a few milliseconds.
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
            _module_distributions = _build_distribution_map()
        return _module_distributions


def _build_distribution_map() -> dict[str, list[str]]:
    """Top-level module -> names of the distributions that install it, from each
    distribution's `top_level.txt`, else the first parts of the paths in its `RECORD`.

    The same map as `importlib.metadata.packages_distributions()`, read with plain string
    operations: the standard function makes a path object per installed file and parses
    every METADATA as an e-mail, about 0.5 s for 80 distributions here against 0.07 s.
    """
    # importlib.metadata costs ~60 ms to import: loaded on first use, not with etude
    from importlib import metadata
    from importlib.machinery import all_suffixes

    suffixes = sorted(all_suffixes(), key=len, reverse=True)
    mapping: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        name = _declared_name(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        if name is None:
            name = dist.metadata["Name"]
            if not name:
                continue
        listed = dist.read_text("top_level.txt")
        if listed is not None:
            tops: Iterable[str] = listed.split()
        else:
            tops = _record_tops(dist.read_text("RECORD") or "", suffixes)
        for top in dict.fromkeys(tops):
            mapping.setdefault(top, []).append(name)
    return mapping


def _declared_name(text: str) -> str | None:
    """The `Name:` of a METADATA / PKG-INFO header (None if absent)."""
    for line in text.splitlines():
        if not line:  # the end of the header
            return None
        if line.startswith("Name:"):
            return line[5:].strip() or None
    return None


def _record_tops(record: str, suffixes: list[str]) -> list[str]:
    """Top-level importable names of the files listed in a RECORD: a folder's name, or a
    file's name without its module suffix (`six.py`, `_cffi_backend.cpython-311-...so`)."""
    tops: list[str] = []
    for row in record.splitlines():
        first, folder, _ = row.split(",", 1)[0].partition("/")
        if not folder:
            for suffix in suffixes:
                if first.endswith(suffix):
                    first = first[: -len(suffix)]
                    break
            else:
                continue  # not a module (a .pth file, a licence)
        if first.isidentifier() and first != "__pycache__":
            tops.append(first)
    return tops


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
        note_problem(problems, f"folder {start} does not exist; code recorded without git")
    else:
        try:
            repo = locate_repo(start)
        except GitError as exc:
            note_problem(problems, f"{exc}; code recorded as the script's text")
    if repo is None:
        return _script_state(script, cwd, untracked_limit, problems)
    root, object_format = repo
    try:
        return git_state(
            root, object_format, script, _absolute(cwd), exclude, untracked_limit, problems
        )
    except GitError as exc:
        note_problem(problems, f"{exc}; code recorded as the script's text")
        return _script_state(script, cwd, untracked_limit, problems)


def _script_state(script: str | None, cwd: str, limit: int, problems: list[str]) -> dict[str, Any]:
    text: str | None = None
    if script is not None:
        try:
            with open(script, "rb") as file:
                data = file.read(limit + 1)
            if len(data) > limit:
                note_problem(
                    problems, f"script {script} is larger than {limit} bytes; text not kept"
                )
            else:
                text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            note_problem(problems, f"script {script} could not be read: {exc}")
    return {"kind": "script", "script": script, "working_dir": _absolute(cwd), "text": text}
