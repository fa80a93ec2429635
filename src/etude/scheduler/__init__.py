"""Experiments, jobs and the scheduler that runs them."""

from .experiment import Experiment, ExperimentFailed, experiment
from .hooks import SubmitHook
from .job import Job

__all__ = ["Experiment", "ExperimentFailed", "Job", "SubmitHook", "experiment"]
