"""Rebuilding a run's code state so that an agent can execute the run again.

`capture.capture_code` recorded the code of a run in its environment.json: a git commit plus
one patch of the uncommitted changes, or the script's text when there was no git.
`prepare_code` turns that record back into a fresh folder to run from:

- git: a `git worktree add --detach` at the recorded commit when the recorded repository
  still exists here and holds the commit (cheap: no copy of the history), else a `git clone`
  of the recorded remote (or of `repo`, for runs made by `Run.create`), then `git apply` of
  the recorded patch;
- no git: the recorded script text written into the folder.

Every failure raises `CodeStateError`, whose message names the commit, the repository and
git's own words, so that the run's console tells its user what to do. Packages and
virtualenvs are in `codestate_env`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TrackingError

__all__ = ["CLONE_TIMEOUT_S", "CodeStateError", "PreparedCode", "prepare_code"]

_log = logging.getLogger("etude.tracking")

CLONE_TIMEOUT_S = 600.0
"""Longest wait for one git command that may fetch a whole history (clone, submodules)."""

_LOCAL_TIMEOUT_S = 120.0  # worktree add, checkout, apply: local work, but trees can be big
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,64}$")


class CodeStateError(TrackingError, RuntimeError):
    """A run's code state cannot be rebuilt: nothing recorded, commit missing, repository
    unreachable, patch that does not apply. The message says which and how to fix it."""


@dataclass
class PreparedCode:
    """A rebuilt code state: run `python script *argv` from `cwd`, then call `cleanup()`.

    `folder` is the fresh folder (a git worktree, a clone, or the folder holding the written
    script); `repository` is the repository a worktree belongs to (None otherwise); `source`
    says how it was made ("worktree of ROOT", "clone of URL", "recorded script text");
    `notes` lists what the agent should tell the run's user (files that were not recorded, a
    working directory that no longer exists, submodules not fetched).
    """

    folder: Path
    cwd: Path
    script: Path
    argv: list[str]
    source: str
    notes: list[str] = field(default_factory=list)
    repository: Path | None = None

    def command(self, python: str) -> list[str]:
        """The command line that runs the script with `python` and the recorded arguments."""
        return [python, str(self.script), *self.argv]

    def cleanup(self) -> None:
        """Remove the folder, and the worktree's entry in its repository. Safe to call twice;
        a failure is logged (with git's words), never raised: the run's result stands."""
        if self.repository is not None and self.repository.is_dir():
            _remove_worktree(self.repository, self.folder)
        if self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.folder.exists():
            _log.warning("code state folder %s could not be removed entirely", self.folder)


def prepare_code(environment: dict[str, Any], destination: Path) -> PreparedCode:
    """Rebuild the code recorded in `environment` (a run's environment.json) in `destination`,
    which must not exist or be an empty folder.

    `environment["code"]` is `capture.capture_code`'s record. For a git record the sources
    tried, in order, are: a worktree of `root` when it is a repository here that holds the
    revision; a clone of `remote`; a clone of `repo` (a path or URL, as `Run.create` records
    it; used as a worktree source too when it is a local repository). The revision is
    `commit`, else `branch`, else the clone's default branch; a record with no commit and a
    non-empty `diff` was captured before the first commit, and its patch is applied to an
    empty repository. `environment["argv"][1:]` are the arguments passed to the script.

    Raises CodeStateError (nothing is left in `destination` then).
    """
    code = environment.get("code")
    if not isinstance(code, dict):
        raise CodeStateError(
            "no code state was recorded for this run (environment.json has no 'code'): it ran "
            "with code capture off, or its capture failed; run it again with capture on"
        )
    argv = [str(arg) for arg in (environment.get("argv") or [])[1:]]
    destination = Path(destination).absolute()
    _claim_destination(destination)
    try:
        if code.get("kind") == "script":
            return _prepare_script(code, destination, argv)
        if code.get("kind") == "git":
            return _prepare_git(code, destination, argv)
        raise CodeStateError(
            f"unknown code state kind {code.get('kind')!r} in environment.json; "
            "expected 'git' or 'script' (was the file edited by hand?)"
        )
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def _claim_destination(destination: Path) -> None:
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise CodeStateError(
            f"{destination} already exists and is not an empty folder; the code state is "
            "rebuilt in a fresh folder only: give a new path"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------------------------------------
# Without git


def _prepare_script(code: dict[str, Any], destination: Path, argv: list[str]) -> PreparedCode:
    recorded = code.get("script")
    text = code.get("text")
    if not recorded:
        raise CodeStateError(
            "no entry script was recorded (the run was interactive, or made without a "
            "script): an agent can only run a script; create the run with script="
        )
    if text is None:
        raise CodeStateError(
            f"the text of script {recorded} was not recorded (it was unreadable or over the "
            "size limit, and not in git): put the script in a git repository and run it again"
        )
    destination.mkdir(exist_ok=True)
    script = destination / Path(recorded).name
    script.write_text(text, encoding="utf-8")
    notes: list[str] = []
    cwd = _existing_folder(code.get("working_dir"), destination, notes)
    return PreparedCode(destination, cwd, script, argv, "recorded script text", notes)


def _existing_folder(recorded: str | None, fallback: Path, notes: list[str]) -> Path:
    """The recorded absolute working directory when it still exists, else `fallback`."""
    if recorded and os.path.isabs(recorded) and os.path.isdir(recorded):
        return Path(recorded)
    if recorded:
        notes.append(f"working directory {recorded} does not exist here; running from {fallback}")
    return fallback


# ---------------------------------------------------------------------------------------------
# With git


def _prepare_git(code: dict[str, Any], destination: Path, argv: list[str]) -> PreparedCode:
    commit, branch = _revision(code)
    if not code.get("script"):
        raise CodeStateError(
            f"no entry script inside the repository was recorded (root {code.get('root')}): "
            "the run was interactive or its script lay outside the repository; "
            "create the run with script= a path relative to the repository"
        )
    diff = code.get("diff") or ""
    if commit is None and diff:  # captured before the first commit: a patch of everything
        source, worktree_of = _empty_repository(destination), None
    else:
        source, worktree_of = _checkout(code, commit, branch, destination)
    prepared = PreparedCode(destination, destination, destination, argv, source)
    prepared.repository = worktree_of
    try:
        _finish_git(code, diff, prepared)
    except BaseException:
        prepared.cleanup()
        raise
    return prepared


def _finish_git(code: dict[str, Any], diff: str, prepared: PreparedCode) -> None:
    """Apply the patch, fetch submodules, and fill in the script, cwd and notes."""
    folder = prepared.folder
    if diff:
        _apply(diff, folder, code, prepared.source)
    if (folder / ".gitmodules").is_file():
        _submodules(folder, prepared.notes)
    skipped = code.get("skipped_untracked") or []
    if skipped:
        prepared.notes.append(
            "untracked files not recorded (over the size limit or unreadable), missing here: "
            + ", ".join(skipped)
        )
    prepared.script = folder / code["script"]
    if not prepared.script.is_file():
        unrecorded = code["script"] in skipped
        hint = " (it was an untracked file that was not recorded)" if unrecorded else ""
        raise CodeStateError(
            f"entry script {code['script']} is not in the rebuilt code ({prepared.source}, "
            f"commit {code.get('commit')}){hint}: commit the script and run it again"
        )
    working_dir = code.get("working_dir") or "."
    if os.path.isabs(working_dir):
        prepared.cwd = _existing_folder(working_dir, folder, prepared.notes)
    else:
        prepared.cwd = folder / working_dir
        if not prepared.cwd.is_dir():
            prepared.notes.append(
                f"working directory {working_dir} is not in the rebuilt code; running from {folder}"
            )
            prepared.cwd = folder


def _revision(code: dict[str, Any]) -> tuple[str | None, str | None]:
    """(commit, branch) as recorded, checked so that neither can pass for a git option."""
    commit = code.get("commit") or None
    branch = code.get("branch") or None
    if commit is not None and not _COMMIT.match(commit):
        raise CodeStateError(
            f"recorded commit {commit!r} is not a commit id (4 to 64 hexadecimal digits)"
        )
    if branch is not None and (branch.startswith("-") or any(c.isspace() for c in branch)):
        raise CodeStateError(f"recorded branch {branch!r} is not a valid branch name")
    return commit, branch


def _checkout(
    code: dict[str, Any], commit: str | None, branch: str | None, destination: Path
) -> tuple[str, Path | None]:
    """Make `destination` a checkout of the revision from the first source that has it;
    return (how it was made, the repository of the worktree or None for a clone)."""
    wanted = f"commit {commit}" if commit else f"branch {branch}" if branch else "default branch"
    failures: list[str] = []
    for local in _local_repositories(code, failures):
        revision = _resolve(local, commit, branch, local=True)
        if revision is None:
            failures.append(f"{local}: has no {wanted}")
            continue
        try:
            _git(["worktree", "add", "--detach", str(destination), revision], local)
            return f"worktree of {local}", local
        except CodeStateError as exc:
            failures.append(str(exc))
            shutil.rmtree(destination, ignore_errors=True)
    for url in _remote_sources(code):
        try:
            _clone(url, destination)
        except CodeStateError as exc:
            failures.append(str(exc))
            shutil.rmtree(destination, ignore_errors=True)
            continue
        revision = _resolve(destination, commit, branch, local=False)
        if revision is None:
            failures.append(f"{url}: has no {wanted} (was it pushed?)")
            shutil.rmtree(destination, ignore_errors=True)
            continue
        _git(["checkout", "-q", "--detach", revision], destination)
        return f"clone of {url}", None
    raise CodeStateError(_no_source_message(code, wanted, failures))


def _no_source_message(code: dict[str, Any], wanted: str, failures: list[str]) -> str:
    tried = "".join(f"\n- {failure}" for failure in failures) or " no repository was recorded"
    return (
        f"the {wanted} could not be checked out from any recorded repository (root "
        f"{code.get('root')}, remote {code.get('remote')}, repo {code.get('repo')}): push the "
        "commit to the remote, or run the agent on a machine where the repository exists. "
        f"Tried:{tried}"
    )


def _local_repositories(code: dict[str, Any], failures: list[str]) -> list[Path]:
    """The recorded repository folders that exist here and are git work trees; why the
    others are not usable is added to `failures`."""
    found: list[Path] = []
    for key in ("root", "repo"):
        value = code.get(key)
        if not value or ":" in value:  # a URL is for cloning
            continue
        if not os.path.isdir(value):
            failures.append(f"{value}: no such folder on this machine")
            continue
        try:
            top = _git(["rev-parse", "--show-toplevel"], Path(value)).strip()
        except CodeStateError as exc:
            failures.append(str(exc))
            continue
        if top and Path(top) not in found:
            found.append(Path(top))
    return found


def _remote_sources(code: dict[str, Any]) -> list[str]:
    """What to clone, in order: the recorded remote, then `repo`, then `root` as a path (a
    repository where worktrees cannot be added, e.g. read-only, can still be cloned)."""
    sources: list[str] = []
    for key in ("remote", "repo", "root"):
        value = code.get(key)
        if value and value not in sources and (":" in value or os.path.isdir(value)):
            sources.append(value)  # a URL, scp-like `host:path`, or a folder here
    return sources


def _resolve(repo: Path, commit: str | None, branch: str | None, *, local: bool) -> str | None:
    """The full id of the commit to check out in `repo`, None when it lacks it."""
    if commit is not None:
        candidates = [f"{commit}^{{commit}}"]
    elif branch is not None:
        remote = f"refs/remotes/origin/{branch}^{{commit}}"
        candidates = [f"refs/heads/{branch}^{{commit}}", remote] if local else [remote]
    else:
        candidates = ["HEAD^{commit}"]
    for candidate in candidates:
        done = _run(["rev-parse", "--verify", "--quiet", candidate], repo, _LOCAL_TIMEOUT_S)
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def _clone(url: str, destination: Path) -> None:
    _git(
        ["clone", "--quiet", "--no-checkout", "--", url, str(destination)],
        destination.parent,
        timeout=CLONE_TIMEOUT_S,
    )


def _empty_repository(destination: Path) -> str:
    """A fresh repository: the record was captured before its repository's first commit."""
    destination.mkdir(exist_ok=True)
    _git(["init", "--quiet"], destination)
    return "empty repository (no commit was recorded)"


def _apply(diff: str, folder: Path, code: dict[str, Any], source: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".patch", encoding="utf-8", delete=False) as tmp:
        tmp.write(diff)
    try:
        _git(["apply", "--whitespace=nowarn", tmp.name], folder)
    except CodeStateError as exc:
        raise CodeStateError(
            f"the recorded uncommitted changes do not apply on commit {code.get('commit')} "
            f"({source}): {exc}. The commit in that repository differs from the one the run "
            "used (history rewritten?); reset the run's code state or run it from a clean tree"
        ) from exc
    finally:
        os.unlink(tmp.name)


def _submodules(folder: Path, notes: list[str]) -> None:
    try:
        _git(
            ["submodule", "update", "--init", "--recursive", "--quiet"],
            folder,
            timeout=CLONE_TIMEOUT_S,
        )
    except CodeStateError as exc:
        notes.append(f"submodules could not be fetched: {exc}")


def _remove_worktree(repo: Path, folder: Path) -> None:
    done = _run(["worktree", "remove", "--force", "--force", str(folder)], repo, _LOCAL_TIMEOUT_S)
    if done.returncode != 0 and folder.exists():
        _log.warning("git worktree remove %s failed: %s", folder, done.stderr.strip())
    shutil.rmtree(folder, ignore_errors=True)
    pruned = _run(["worktree", "prune"], repo, _LOCAL_TIMEOUT_S)
    if pruned.returncode != 0:
        _log.warning("git worktree prune in %s failed: %s", repo, pruned.stderr.strip())


# ---------------------------------------------------------------------------------------------
# Running git


def remove_work_folder(folder: Path) -> None:
    """Delete the work folder of an agent that died (its runs' rebuilt code); git worktrees in
    it are unregistered from their repositories (`git worktree prune`), as the agent itself
    would have done had it lived."""
    repositories = set()
    children = list(folder.iterdir()) if folder.is_dir() else []
    for child in children:
        dot_git = child / ".git"
        try:
            text = dot_git.read_text(encoding="utf-8").strip() if dot_git.is_file() else ""
        except OSError:
            continue
        if text.startswith("gitdir:"):  # a worktree: REPO/.git/worktrees/NAME
            repositories.add(Path(text.partition(":")[2].strip()).parent.parent.parent)
    shutil.rmtree(folder, ignore_errors=True)
    for repository in repositories:
        if repository.is_dir():
            pruned = _run(["worktree", "prune"], repository, _LOCAL_TIMEOUT_S)
            if pruned.returncode != 0:
                _log.warning("git worktree prune in %s failed: %s", repository,
                             pruned.stderr.strip())


def _git(args: Sequence[str], cwd: Path, timeout: float = _LOCAL_TIMEOUT_S) -> str:
    """The standard output of `git args` in `cwd`; CodeStateError with git's stderr else."""
    done = _run(args, cwd, timeout)
    if done.returncode != 0:
        message = done.stderr.strip() or f"exit status {done.returncode}"
        raise CodeStateError(f"git {' '.join(args)} (in {cwd}) failed: {message}")
    return done.stdout


def _run(args: Sequence[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run git without prompts, hooks or the user's pager; messages in English."""
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    # an agent has no terminal: ssh must fail at once rather than ask for a passphrase
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    # hooks stay off: rebuilding code must not run the user's post-checkout scripts
    command = ["git", "-c", "core.hooksPath=/dev/null", "-c", "advice.detachedHead=false", *args]
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CodeStateError("git was not found on PATH; install git to rebuild the code") from exc
    except subprocess.TimeoutExpired as exc:
        raise CodeStateError(
            f"git {' '.join(args)} (in {cwd}) took over {timeout:g} s; is the repository "
            "reachable from this machine?"
        ) from exc
