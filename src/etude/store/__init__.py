"""The index of a workspace: its jobs and experiments in SQLite (default) or PostgreSQL.

The folders stay the source of truth; the index is derived from them and answers listings and
queries fast (see docs/store.md). This package imports SQLAlchemy: import it lazily from code
that job processes or `import etude` load.
"""

from .database import StoreCorruptError, StoreError, StoreVersionError
from .filters import FilterError, job_fields
from .location import StoreConfigError, StoreLocation, locate
from .open import open_store
from .reconcile import Changes, check, rebuild, refresh
from .records import JobRecord, read_job_folder
from .rows import ExperimentInfo, ExperimentRun, JobRow
from .store import Store

__all__ = [
    "Changes",
    "ExperimentInfo",
    "ExperimentRun",
    "FilterError",
    "JobRecord",
    "JobRow",
    "Store",
    "StoreConfigError",
    "StoreCorruptError",
    "StoreError",
    "StoreLocation",
    "StoreVersionError",
    "check",
    "job_fields",
    "locate",
    "open_store",
    "read_job_folder",
    "rebuild",
    "refresh",
]
