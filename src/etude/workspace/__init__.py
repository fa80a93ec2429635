"""Workspace layout, atomic markers, locks and job states on disk."""

from .atomic import CorruptFileError, read_json, write_atomic, write_json_atomic
from .cache import cache
from .layout import JobDir, Workspace, WorkspaceError, current_workspace, short_name
from .locks import FileLock, LockReentryError, is_locked
from .partial import Partial, partial
from .status import STATES, JobStatus, check_done, process_alive, read_done, read_status, undo_done

__all__ = [
    "STATES",
    "CorruptFileError",
    "FileLock",
    "JobDir",
    "JobStatus",
    "LockReentryError",
    "Partial",
    "Workspace",
    "WorkspaceError",
    "cache",
    "check_done",
    "current_workspace",
    "is_locked",
    "partial",
    "process_alive",
    "read_done",
    "read_json",
    "read_status",
    "short_name",
    "undo_done",
    "write_atomic",
    "write_json_atomic",
]
