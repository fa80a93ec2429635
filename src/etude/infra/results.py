"""What a job folder holds about its outcome: the result, or the failure and its traceback.

`result.pkl` is the commit point of a TaskInfra computation: it is written atomically (temp
file + rename), so it exists complete or not at all. It starts with the digest of the full uid
config it was computed for, so that one read both loads the result and checks that it belongs
to the current configuration. `.etude/done.json` follows it for etude's status readers.

A failure is recorded in `.etude/failed.json` (reason, exception type, message, traceback,
times) and, when the exception pickles, in `.etude/error.pkl`.
"""

from __future__ import annotations

import os
import pickle
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..config.runtime import GracefulTimeout, TaskCancelled
from ..workspace import JobDir, read_json, write_atomic, write_json_atomic
from ..workspace.atomic import CorruptFileError
from ..workspace.layout import INFRA_JOB_NAME
from . import pickling
from .errors import JobError

RESULT = "result.pkl"
ERROR = "error.pkl"
FORMAT = "etude-infra-result-1"
JOB_NAME = INFRA_JOB_NAME  # job files: job.pkl (payload), job.out, job.err


def write_json_quick(path: Path, value: Any) -> None:
    """JSON written atomically without fsync: configs and markers that follow `result.pkl`."""
    write_json_atomic(path, value, fsync=False)


def job_dir(folder: Path | str) -> JobDir:
    return JobDir(Path(folder), JOB_NAME)


def payload_path(job: JobDir) -> Path:
    return job.path / f"{JOB_NAME}.pkl"


def error_path(job: JobDir) -> Path:
    return job.meta / ERROR


class Mismatch(Exception):
    """The stored result was computed for another full config (digest given)."""

    def __init__(self, stored: str) -> None:
        super().__init__(stored)
        self.stored = stored


def load_result(folder: str, full_digest: str) -> Any:
    """The result stored in `folder`; FileNotFoundError if none, `Mismatch` if not ours."""
    with open(os.path.join(folder, RESULT), "rb") as stream:
        data = stream.read()
    try:
        fmt, stored, value = pickling.loads(data)
    except (ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise CorruptFileError(Path(folder) / RESULT, f"cannot be unpickled ({exc})") from exc
    if fmt != FORMAT:
        raise CorruptFileError(Path(folder) / RESULT, f"unknown format {fmt!r}")
    if stored != full_digest:
        raise Mismatch(stored)
    return value


def has_result(folder: Path) -> bool:
    return os.path.exists(os.path.join(folder, RESULT))


def store_result(job: JobDir, value: Any, full_digest: str, started: float) -> None:
    """Write the result, then the done marker; clear an old failure record."""
    write_atomic(job.path / RESULT, pickling.dumps((FORMAT, full_digest, value)))
    write_json_quick(job.done, {"started": started, "ended": time.time()})
    for stale in (job.failed, error_path(job)):
        stale.unlink(missing_ok=True)


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, GracefulTimeout):
        return "timeout"
    if isinstance(exc, (TaskCancelled, KeyboardInterrupt)):
        return "cancelled"
    return "error"


def store_failure(job: JobDir, exc: BaseException, started: float) -> None:
    """Record `exc` (type, message, traceback; pickled too when it can be)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    record = {
        "reason": reason_of(exc),
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": text,
        "started": started,
        "ended": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    job.meta.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(error_path(job), pickling.dumps(exc))
    except Exception as pickle_exc:  # an exception holding unpicklable state: keep the text
        error_path(job).unlink(missing_ok=True)
        record["unpicklable"] = f"{type(pickle_exc).__name__}: {pickle_exc}"
    write_json_atomic(job.failed, record)


def read_failure(job: JobDir) -> dict[str, Any] | None:
    """The failure record, or None if there is none (an unreadable one counts as a failure)."""
    try:
        record = read_json(job.failed)
    except FileNotFoundError:
        return None
    except CorruptFileError as exc:
        return {"reason": "error", "type": "", "message": str(exc), "traceback": ""}
    return record if isinstance(record, dict) else {"reason": "error", "message": str(record)}


RETRY_HINT = "Use mode='retry' to compute it again."


def failure_error(
    job: JobDir, record: dict[str, Any], what: str, hint: str = RETRY_HINT
) -> JobError:
    """The `JobError` to raise for a recorded failure, chained to the original if it pickled."""
    kind = str(record.get("type") or "")
    short = kind.rsplit(".", 1)[-1] or "Error"
    trace = str(record.get("traceback") or "").rstrip()
    message = (
        f"{what} failed ({record.get('reason', 'error')}): {short}: {record.get('message', '')}\n"
        f"Folder: {job.path} (logs: {job.stdout.name}, {job.stderr.name}; record: "
        f".etude/failed.json). {hint}"
    )
    if trace:
        message += f"\n\nTraceback of the failed computation:\n{trace}"
    error = JobError(message, error_type=kind, folder=str(job.path))
    try:
        with open(error_path(job), "rb") as stream:
            original = pickling.loads(stream.read())
        if isinstance(original, BaseException):
            error.__cause__ = original
    except FileNotFoundError:
        pass
    except Exception as exc:  # the exception class may be gone: the text above is enough
        print(f"etude: cannot unpickle {error_path(job)}: {exc}", file=sys.stderr)
    return error


def archive_failure(job: JobDir) -> None:
    """Move an old failure record aside (to `.etude/history/`) before computing again."""
    if not job.failed.exists():
        return
    job.history.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time():.3f}-{os.getpid()}"
    for path in (job.failed, error_path(job)):
        try:
            os.replace(path, job.history / f"{stamp}-{path.name}")
        except FileNotFoundError:
            pass  # another process moved it first


def process_record(argv: list[str] | None = None) -> dict[str, Any]:
    """What `.etude/process.json` says about the process running a job."""
    record: dict[str, Any] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
    }
    try:
        import psutil  # lazily: only to tell a reused pid from ours later

        record["create_time"] = psutil.Process().create_time()
    except Exception as exc:  # no psutil data: the record is still useful
        record["create_time_error"] = str(exc)
    if argv is not None:
        record["argv"] = argv
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if name in os.environ:
            record[name.lower()] = os.environ[name]
    return record
