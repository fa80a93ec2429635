"""The job process: rebuild the task from the job folder, run it, write done or failed."""

from .job import run_job

__all__ = ["run_job"]
