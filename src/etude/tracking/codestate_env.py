"""The Python environment of a run executed again: which recorded package versions this
interpreter lacks, and a cached virtualenv holding the recorded requirements.

The agent runs a queued run in its own interpreter and warns with `package_differences`;
with `--install` it runs it in `ensure_virtualenv(...)` instead. See `codestate` for the code.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..workspace.atomic import write_json_atomic
from ..workspace.locks import FileLock
from .codestate import CodeStateError

__all__ = ["PIP_TIMEOUT_S", "PackageDifference", "ensure_virtualenv", "package_differences"]

_log = logging.getLogger("etude.tracking")

PIP_TIMEOUT_S = 3600.0
"""Longest wait for one `pip install` of a run's requirements (large wheels, slow mirrors)."""

READY_MARKER = "etude-ready.json"
"""Written last, atomically, into a virtualenv whose requirements are all installed."""

# `name[extras] OP version ; marker`: enough of PEP 508 for the lines capture records and
# the pins users write; anything else (URLs, paths, options) is not compared.
_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?:(?P<op>==|>=|<=|~=|!=|>|<|===)\s*(?P<version>[^\s;,]+))?\s*(?:[;,#].*)?$"
)
_OWN_DISTRIBUTION = "etude"  # no index holds the agent's etude: the venv borrows it


@dataclass(frozen=True)
class PackageDifference:
    """A recorded requirement this interpreter does not meet: `installed` is None when the
    distribution is missing; `recorded` is the pinned version (None for an unpinned line)."""

    name: str
    recorded: str | None
    installed: str | None

    def __str__(self) -> str:
        here = self.installed if self.installed is not None else "not installed"
        return f"{self.name}: recorded {self.recorded or 'any version'}, here {here}"


def package_differences(
    recorded_requirements: str | Iterable[str],
    installed: Mapping[str, str] | None = None,
) -> list[PackageDifference]:
    """The recorded requirements that this interpreter's distributions do not match, sorted by
    name: a `name==version` pin whose version differs (`1.0` equals `1.0.0`), or any line
    naming a distribution that is not installed. Names compare as PEP 503 normalises them.

    `recorded_requirements` is requirements.txt text or its lines (environment.json's
    `packages`); blank lines, comments, options (`-r`, `--index-url`) and URL or path
    requirements are skipped. `installed` maps names to versions, by default those of
    `importlib.metadata` for the running interpreter.
    """
    if installed is None:
        installed = installed_versions()
    else:
        installed = {canonical_name(name): version for name, version in installed.items()}
    differences: dict[str, PackageDifference] = {}
    for line in _lines(recorded_requirements):
        match = _REQUIREMENT.match(line)
        if match is None:
            continue
        name = canonical_name(match["name"])
        pinned = match["version"] if match["op"] in ("==", "===") else None
        here = installed.get(name)
        if here is None or (pinned is not None and not same_version(pinned, here)):
            differences[name] = PackageDifference(match["name"], pinned, here)
    return [differences[key] for key in sorted(differences)]


def installed_versions() -> dict[str, str]:
    """{normalised name: version} of the distributions the running interpreter can import."""
    from importlib import metadata  # ~60 ms: loaded when an agent needs it, not with etude

    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:  # a broken install can lack metadata; the first on sys.path wins, as in import
            versions.setdefault(canonical_name(name), dist.version)
    return versions


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares it: lower case, runs of `-_.` as one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(left: str, right: str) -> bool:
    """Whether two version strings name the same release: equal once lower-cased, without a
    leading `v`, and with trailing `.0` parts of the numeric release dropped (PEP 440 says
    `1.0 == 1.0.0`). Local labels (`+cu121`) count."""
    return _version_key(left) == _version_key(right)


def _version_key(version: str) -> str:
    text = version.strip().lower().removeprefix("v")
    match = re.match(r"^(\d+(?:\.\d+)*)(.*)$", text)
    if match is None:
        return text
    parts = match[1].split(".")
    while len(parts) > 1 and int(parts[-1]) == 0:
        parts.pop()
    return ".".join(str(int(part)) for part in parts) + match[2]


def _lines(requirements: str | Iterable[str]) -> list[str]:
    """Requirement lines without comments, blanks and surrounding spaces."""
    raw = requirements.splitlines() if isinstance(requirements, str) else list(requirements)
    out = []
    for line in raw:
        text = line.split(" #", 1)[0].strip()
        if text and not text.startswith("#"):
            out.append(text)
    return out


# ---------------------------------------------------------------------------------------------
# Virtualenvs


def ensure_virtualenv(
    requirements: str | Iterable[str],
    cache_root: Path,
    python: str = sys.executable,
    pip_args: Sequence[str] = (),
) -> Path:
    """The python of a virtualenv under `cache_root` holding `requirements`; made on first
    use, reused (nothing reinstalled) by every later call with the same requirements, in any
    order, and the same `python`.

    The virtualenv is made with `python -m venv` and filled with pip (`pip_args` are added
    to `pip install`, e.g. `--index-url URL`). A line naming etude is left out: the agent's
    own etude, and whatever else the requirements lack, come from the agent's environment,
    placed after the virtualenv's own packages on `sys.path` (same Python version only).
    Concurrent calls (several agents) wait for each other on a lock. A virtualenv counts as
    made only once `READY_MARKER` is written: a failed or killed install leaves none, and
    the next call starts over. The folder is made in place and not renamed into place,
    because a virtualenv's scripts hold its absolute path.

    Raises CodeStateError with pip's message when the virtualenv cannot be made.
    """
    lines = sorted(
        {line for line in _lines(requirements) if not _is_own_distribution(line)}, key=str.lower
    )
    python_path = _interpreter(python)
    key = hashlib.sha256("\n".join([python_path, *lines]).encode()).hexdigest()[:20]
    cache_root = Path(cache_root).absolute()
    cache_root.mkdir(parents=True, exist_ok=True)
    folder = cache_root / f"venv-{key}"
    venv_python = folder / "bin" / "python"
    with FileLock(cache_root / f"venv-{key}.lock"):
        if (folder / READY_MARKER).is_file():
            return venv_python
        if folder.exists():
            _log.warning("removing half-made virtualenv %s (an earlier install failed)", folder)
            shutil.rmtree(folder)
        try:
            _build(folder, python_path, lines, pip_args)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        marker = {"python": python_path, "requirements": lines, "made": time.time()}
        write_json_atomic(folder / READY_MARKER, marker)
    return venv_python


def _is_own_distribution(line: str) -> bool:
    match = _REQUIREMENT.match(line)
    return match is not None and canonical_name(match["name"]) == _OWN_DISTRIBUTION


def _interpreter(python: str) -> str:
    found = shutil.which(python)
    if found is None:
        raise CodeStateError(
            f"python interpreter {python!r} was not found; pass the path of an existing one"
        )
    return os.path.abspath(found)


def _build(folder: Path, python: str, lines: list[str], pip_args: Sequence[str]) -> None:
    _call([python, "-m", "venv", str(folder)], "python -m venv", timeout=600.0)
    venv_python = str(folder / "bin" / "python")
    if lines:
        requirements = folder / "etude-requirements.txt"
        requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
        pip = [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        _call([*pip, *pip_args, "-r", str(requirements)], "pip install", timeout=PIP_TIMEOUT_S)
    _borrow_agent_environment(folder, venv_python)


def _borrow_agent_environment(folder: Path, venv_python: str) -> None:
    """Put this process's site folders (where etude is) after the virtualenv's own, through
    a .pth file run by `site` at start-up; only for the same Python version, whose
    compiled modules the virtualenv can load."""
    probe = (
        "import sys, sysconfig\nprint(*sys.version_info[:2])\nprint(sysconfig.get_path('purelib'))"
    )
    out = _call([venv_python, "-c", probe], "the virtualenv's python", timeout=60.0)
    version, _, purelib = out.strip().partition("\n")
    here = f"{sys.version_info[0]} {sys.version_info[1]}"
    if version != here:
        _log.warning(
            "virtualenv %s runs Python %s, the agent %s: etude is not shared with it; "
            "list etude's source in the requirements",
            folder,
            version.replace(" ", "."),
            here.replace(" ", "."),
        )
        return
    import site  # the site module is loaded at start-up anyway; imported here for clarity

    borrowed = [path for path in site.getsitepackages() if os.path.isdir(path)]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        borrowed.append(site.getusersitepackages())
    # addsitedir (unlike a plain path line) also runs those folders' .pth files, which is how
    # an editable etude is found
    body = "".join(f"import site; site.addsitedir({path!r})\n" for path in borrowed)
    Path(purelib, "zz_etude_agent_environment.pth").write_text(body, encoding="utf-8")


def _call(command: list[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CodeStateError(f"{what} took over {timeout:g} s: {' '.join(command)}") from exc
    except OSError as exc:
        raise CodeStateError(f"{what} could not start: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-15:])
        raise CodeStateError(
            f"{what} failed (exit status {done.returncode}): {' '.join(command)}\n{tail}\n"
            "Fix or remove the requirement it names (environment.json 'packages'), or run "
            "without --install"
        )
    return done.stdout
