"""`etude jobs ...`: list, read the logs of, stop, locate and clean the jobs of a workspace.

Everything here reads the job folders themselves (they are the source of truth) and tolerates
what a crash or a full disk leaves behind: a corrupt file is reported with its job, never fatal.
"""

from __future__ import annotations

import argparse
import codecs
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..launchers.slurm_queue import recorded_job_state
from ..workspace import (
    CorruptFileError,
    FileLock,
    JobDir,
    Workspace,
    process_alive,
    read_json,
    read_status,
)
from ..workspace.status import ERROR, RUNNING, UNSCHEDULED, WAITING
from .jobs_rerun import add_rerun
from .kill import stop_job
from .listing import add_diff, add_list, parse_state

if TYPE_CHECKING:
    from ..store import JobRecord

POLL_INTERVAL = 0.2  # seconds between two looks at a followed log or a job being stopped
KILL_TIMEOUT = 10.0  # seconds `jobs kill` waits for the job to stop after SIGTERM
CLEANABLE = (ERROR, UNSCHEDULED)


# -- argument types --------------------------------------------------------------------------
def _parse_clean_state(text: str) -> str:
    state = parse_state(text)
    if state not in CLEANABLE:
        raise argparse.ArgumentTypeError(
            f"jobs in state {state!r} are never cleaned; choose from {', '.join(CLEANABLE)}"
        )
    return state


# -- jobs log --------------------------------------------------------------------------------
class _Tail:
    """Reads what was appended to a file since the previous read.

    Starts over when the file shrank: a new attempt of the job rewrote it.
    """

    CHUNK = 1 << 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read(self) -> Iterator[str]:
        try:
            with open(self.path, "rb") as handle:
                if os.fstat(handle.fileno()).st_size < self.offset:
                    self.offset = 0
                    self.decoder.reset()
                handle.seek(self.offset)
                while chunk := handle.read(self.CHUNK):
                    self.offset += len(chunk)
                    yield self.decoder.decode(chunk)
        except FileNotFoundError:
            return  # not written yet: the job has not started


class _LogPrinter:
    """Copies new log text to `out`; with several files, a `==> PATH <==` line (as `tail`
    prints) precedes the text of each file whenever the source changes."""

    def __init__(self, paths: list[Path], out: IO[str]) -> None:
        self.tails = [_Tail(path) for path in paths]
        self.out = out
        self.current: _Tail | None = None
        self.line_ended = True

    def drain(self) -> None:
        for tail in self.tails:
            for text in tail.read():
                if not text:
                    continue
                if len(self.tails) > 1 and tail is not self.current:
                    gap = "" if self.current is None else ("\n" if self.line_ended else "\n\n")
                    self.out.write(f"{gap}==> {tail.path} <==\n")
                    self.current = tail
                self.out.write(text)
                self.line_ended = text.endswith("\n")
        self.out.flush()


def _log(workspace: Workspace, args: argparse.Namespace) -> int:
    job = workspace.find_job(args.job)
    streams = args.streams or ("out", "err")
    paths = [path for key, path in (("out", job.stdout), ("err", job.stderr)) if key in streams]
    printer = _LogPrinter(paths, sys.stdout)
    if not args.follow:
        printer.drain()
        if not any(path.exists() for path in paths):
            state = read_status(job).state
            print(f"etude: {job.label} has no log yet (state {state}).", file=sys.stderr)
        return 0
    while True:
        # The state is read before the files: once it says the job ended, everything the job
        # wrote is already in them, and this last drain prints it.
        state = read_status(job).state
        printer.drain()
        if state not in (RUNNING, WAITING):
            print(f"etude: {job.label} is {state}.", file=sys.stderr)
            return 0
        time.sleep(POLL_INTERVAL)


# -- jobs clean ------------------------------------------------------------------------------
def _experiment_holding(workspace: Workspace, job: JobDir) -> str | None:
    """Why a live experiment may still run `job` (it could retry a failure), or None."""
    try:
        record = read_json(job.scheduled)
    except (FileNotFoundError, CorruptFileError):
        return None
    if not isinstance(record, dict) or not process_alive(record):
        return None
    name = record.get("experiment")
    try:
        run = read_json(workspace.experiments / str(name) / "run.json")
    except (FileNotFoundError, CorruptFileError):
        run = None
    if isinstance(run, dict) and run.get("ended") is not None:
        process = run.get("process")
        if isinstance(process, dict) and process.get("pid") == record.get("pid"):
            return None  # that experiment process already left its `with` block
    return f"experiment {name!r} (pid {record.get('pid')}) is still running and may run it"


def _delete(workspace: Workspace, job: JobDir) -> str | None:
    """Delete `job`'s folder while holding its lock; return why it was kept, or None."""
    lock = FileLock(job.lock) if job.meta.is_dir() else None
    if lock is not None and not lock.try_acquire():
        return "its lock is held (it is running)"
    try:
        # Checked again under the lock: the job may have been run since it was listed.
        if job.is_done():
            return "it is done"
        holder = _experiment_holding(workspace, job)
        if holder is not None:
            return holder
        shutil.rmtree(job.path)
    except OSError as exc:
        return f"cannot delete it ({exc})"
    finally:
        if lock is not None:
            lock.release()
    return None


def _confirm(count: int) -> bool | None:
    """The user's answer, or None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    try:
        answer = input(f"Delete {count} folders? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _label(record: JobRecord) -> str:
    return f"{record.task}/{record.id[:12]}"


def _clean(workspace: Workspace, args: argparse.Namespace) -> int:
    # Read as the index reads folders (a pydantic-infra result computed in process has no
    # params.json, and that is not a problem); imported here: the store loads SQLAlchemy.
    from ..store import read_job_folder

    states = set(args.state or CLEANABLE)
    doomed: list[tuple[JobDir, JobRecord]] = []
    for job in workspace.iter_job_dirs():
        record = read_job_folder(workspace, job, recorded_job_state)
        if record.state not in states:
            continue
        holder = _experiment_holding(workspace, job)
        if holder is not None:
            print(f"Keeping {_label(record)}: {holder}.")
        else:
            doomed.append((job, record))
    if not doomed:
        print(f"Nothing to clean in {workspace.path}.")
        return 0
    for job, record in doomed:
        note = " (unreadable parameters)" if record.problems else ""
        print(f"{record.state:<12} {_label(record)}  {job.path}{note}")
    if not args.yes:
        answer = _confirm(len(doomed))
        if answer is None:
            print(
                f"etude: not deleting {len(doomed)} folders: no terminal to confirm on; "
                "pass --yes to delete them.",
                file=sys.stderr,
            )
            return 2
        if not answer:
            print("Nothing deleted.")
            return 1
    kept = 0
    for job, record in doomed:
        reason = _delete(workspace, job)
        if reason is not None:
            kept += 1
            print(f"Kept {_label(record)}: {reason}.", file=sys.stderr)
    print(f"Deleted {len(doomed) - kept} folders.")
    return 1 if kept else 0


# -- jobs path -------------------------------------------------------------------------------
def _path(workspace: Workspace, args: argparse.Namespace) -> int:
    print(workspace.find_job(args.job).path.absolute())
    return 0


# -- parser ----------------------------------------------------------------------------------
Commands = argparse._SubParsersAction  # the object `add_subparsers` returns
ID_HELP = "job id prefix (or the job folder)"


def register(groups: Commands[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `jobs` and its sub-commands to `groups`; `common` holds the shared options."""
    group = groups.add_parser("jobs", help="list, follow, stop and clean jobs")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_list(commands.add_parser("list", parents=[common], help="list jobs and their states"))
    add_diff(
        commands.add_parser("diff", parents=[common], help="the parameters two jobs differ in")
    )
    _add_log(commands.add_parser("log", parents=[common], help="print a job's output"))
    kill = commands.add_parser("kill", parents=[common], help="stop a running job (SIGTERM)")
    kill.add_argument("job", metavar="ID", help=ID_HELP)
    kill.add_argument(
        "--timeout",
        type=float,
        default=KILL_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for it to stop (default {KILL_TIMEOUT:g})",
    )
    kill.add_argument(
        "--force", action="store_true", help="send SIGKILL if SIGTERM did not stop it in time"
    )
    kill.set_defaults(handler=stop_job)
    clean = commands.add_parser(
        "clean", parents=[common], help="delete failed and orphan job folders"
    )
    clean.add_argument("--yes", action="store_true", help="delete without asking")
    clean.add_argument(
        "--state",
        action="append",
        type=_parse_clean_state,
        metavar="STATE",
        help="only jobs in this state (error or unscheduled; default both)",
    )
    clean.set_defaults(handler=_clean)
    add_rerun(
        commands.add_parser(
            "rerun", parents=[common], help="make done jobs run again at their next submission"
        )
    )
    path = commands.add_parser("path", parents=[common], help="print a job's folder")
    path.add_argument("job", metavar="ID", help=ID_HELP)
    path.set_defaults(handler=_path)


def _add_log(log: argparse.ArgumentParser) -> None:
    log.add_argument("job", metavar="ID", help=ID_HELP)
    log.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep printing new output until the job is no longer running",
    )
    which = log.add_mutually_exclusive_group()
    which.add_argument(
        "--stdout", dest="streams", action="store_const", const=("out",), help="only NAME.out"
    )
    which.add_argument(
        "--stderr", dest="streams", action="store_const", const=("err",), help="only NAME.err"
    )
    log.set_defaults(handler=_log)
