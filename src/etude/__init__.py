"""etude: typed experiment configurations with stable identities, and a scheduler that never
recomputes what exists.

Public names live here; everything else may move between versions.
"""

from typing import TYPE_CHECKING, Any

from .config import (
    Config,
    ConfigError,
    Constant,
    DependentMarker,
    GracefulTimeout,
    InstanceConfig,
    LightweightTask,
    Meta,
    Param,
    PathGenerator,
    ResumableTask,
    Task,
    TaskCancelled,
    field,
    identifier,
    param_group,
    pathgenerator,
    stop_tags,
    tag,
)
from .scheduler import SubmitHook, experiment
from .workspace import cache, partial

if TYPE_CHECKING:
    from .scheduler.experiment_context import Experiment, ExperimentFailed

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Constant",
    "DependentMarker",
    "Experiment",
    "ExperimentFailed",
    "GracefulTimeout",
    "InstanceConfig",
    "LightweightTask",
    "Meta",
    "Param",
    "PathGenerator",
    "ResumableTask",
    "SubmitHook",
    "Task",
    "TaskCancelled",
    "cache",
    "experiment",
    "field",
    "identifier",
    "param_group",
    "partial",
    "pathgenerator",
    "stop_tags",
    "tag",
]


def __getattr__(name: str) -> Any:
    # The scheduler is imported on first use: job processes never need it.
    if name in ("Experiment", "ExperimentFailed"):
        from .scheduler import experiment_context

        return getattr(experiment_context, name)
    raise AttributeError(f"module 'etude' has no attribute {name!r}")
