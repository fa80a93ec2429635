"""Experiments, jobs and the scheduler that runs them.

`experiment` and `SubmitHook` are light; the rest is imported on first use so that job
processes, which only need the configuration layer, start fast.
"""

from typing import TYPE_CHECKING, Any

from .entry import experiment
from .hooks import SubmitHook

if TYPE_CHECKING:
    from .experiment_context import Experiment, ExperimentFailed
    from .job import Job

__all__ = ["Experiment", "ExperimentFailed", "Job", "SubmitHook", "experiment"]


def __getattr__(name: str) -> Any:
    if name in ("Experiment", "ExperimentFailed"):
        from . import experiment_context

        return getattr(experiment_context, name)
    if name == "Job":
        from . import job

        return job.Job
    raise AttributeError(f"module 'etude.scheduler' has no attribute {name!r}")
